package dev.satchel.client;

import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A client of a Satchel server's REST face ({@code POST /v1/functions/NAME:invoke}) that sends and
 * receives {@code application/avro} bodies with the {@code X-Satchel-Fingerprint} header, through
 * the same {@link AvroCodec} as {@link SatchelGrpcClient}. The REST face publishes no Avro schemas,
 * so the caller hands each function's {@link FunctionDescription}: from {@link
 * SatchelGrpcClient#describe}, or {@link FunctionDescription#of} with the schemas of the bundle.
 * Thread-safe (java.net.http).
 *
 * <pre>{@code
 * var rest = new SatchelRestClient(URI.create("http://localhost:8000"));
 * rest.register(FunctionDescription.of("add", requestSchemaJson, "\"double\""));
 * Object sum = rest.invoke("add", Map.of("a", 1.5, "b", 2.0));   // 3.5
 * }</pre>
 */
public final class SatchelRestClient {
    static final String AVRO = "application/avro";
    static final String FINGERPRINT = "X-Satchel-Fingerprint";
    static final String TIMEOUT = "X-Satchel-Timeout";

    /**
     * How much longer than a call's deadline the HTTP request may take: the server answers 504
     * itself, after stopping the call (a worker stuck in C code gets 2 s to stop, then is killed).
     */
    static final Duration DEADLINE_MARGIN = Duration.ofSeconds(10);

    private final HttpClient http;
    private final URI base;
    private final String token;
    private final Map<String, AvroCodec> codecs = new ConcurrentHashMap<>();

    /**
     * A client of the server at {@code baseUrl} (e.g. {@code http://localhost:8000}), without a
     * token.
     */
    public SatchelRestClient(URI baseUrl) {
        this(baseUrl, null);
    }

    /**
     * A client of the server at {@code baseUrl}; {@code token} (or null) is sent as a bearer token.
     */
    public SatchelRestClient(URI baseUrl, String token) {
        this(
                HttpClient.newBuilder()
                        .version(HttpClient.Version.HTTP_1_1)
                        .connectTimeout(Duration.ofSeconds(10))
                        .build(),
                baseUrl,
                token);
    }

    /** A client over the caller's HttpClient (proxies, TLS settings...). */
    public SatchelRestClient(HttpClient http, URI baseUrl, String token) {
        this.http = Objects.requireNonNull(http, "http");
        String text = Objects.requireNonNull(baseUrl, "baseUrl").toString();
        this.base = URI.create(text.endsWith("/") ? text : text + "/");
        this.token = token;
    }

    /** Make {@code function} callable by name; returns this client. */
    public SatchelRestClient register(FunctionDescription function) {
        codecs.put(function.name(), AvroCodec.of(function));
        return this;
    }

    /** Call the registered function {@code name} and wait for its result. */
    public Object invoke(String name, Map<String, ?> arguments) {
        return invoke(registered(name), arguments, null);
    }

    /**
     * Call the registered function {@code name}, waiting at most {@code deadline} (null: no
     * deadline).
     */
    public Object invoke(String name, Map<String, ?> arguments, Duration deadline) {
        return invoke(registered(name), arguments, deadline);
    }

    /** Call {@code function} and wait for its result. */
    public Object invoke(FunctionDescription function, Map<String, ?> arguments) {
        return invoke(function, arguments, null);
    }

    /**
     * Call {@code function} and wait at most {@code deadline} (null: no deadline) for its result;
     * past it the server cancels the call ({@code X-Satchel-Timeout}) and a {@link
     * CallTimeoutException} is thrown.
     */
    public Object invoke(
            FunctionDescription function, Map<String, ?> arguments, Duration deadline) {
        AvroCodec codec = codecs.get(function.name());
        if (codec == null || !codec.function().equals(function)) {
            codec = AvroCodec.of(function);
        }
        return invoke(codec, arguments, deadline);
    }

    private Object invoke(AvroCodec codec, Map<String, ?> arguments, Duration deadline) {
        String name = codec.function().name();
        byte[] body = codec.encodeRequest(arguments);
        HttpRequest.Builder request =
                HttpRequest.newBuilder(invokeUri(name))
                        .POST(HttpRequest.BodyPublishers.ofByteArray(body))
                        // no cleartext HTTP/2 upgrade (h2c): the server speaks HTTP/1.1, and an
                        // upgrade request
                        // with a body loses the body there
                        .version(HttpClient.Version.HTTP_1_1)
                        .header("Content-Type", AVRO)
                        .header("Accept", AVRO)
                        .header(FINGERPRINT, codec.requestFingerprint());
        if (token != null) {
            request.header("Authorization", "Bearer " + token);
        }
        if (deadline != null) {
            if (deadline.isNegative() || deadline.isZero()) {
                throw new IllegalArgumentException("deadline must be positive, got " + deadline);
            }
            request.header(TIMEOUT, String.format(Locale.ROOT, "%.6f", deadline.toNanos() / 1e9));
            request.timeout(deadline.plus(DEADLINE_MARGIN));
        }
        HttpResponse<byte[]> response = send(request.build(), name, deadline);
        if (response.statusCode() != 200) {
            throw RestProblems.from(response, name);
        }
        String type = response.headers().firstValue("content-type").orElse("");
        if (!type.toLowerCase(Locale.ROOT).startsWith(AVRO)) {
            throw new SatchelException(
                    "malformed-response",
                    name,
                    name + ": the server answered " + type + ", not " + AVRO);
        }
        return codec.decodeResponse(
                response.body(), response.headers().firstValue(FINGERPRINT).orElse(""));
    }

    private HttpResponse<byte[]> send(HttpRequest request, String name, Duration deadline) {
        try {
            return http.send(request, HttpResponse.BodyHandlers.ofByteArray());
        } catch (HttpTimeoutException e) {
            throw new CallTimeoutException(
                    name, name + ": no answer within the deadline " + deadline, e);
        } catch (IOException e) {
            throw new SatchelException(
                    SatchelException.UNAVAILABLE,
                    name,
                    name + ": cannot reach " + base + ": " + e,
                    e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SatchelException(
                    "cancelled", name, name + ": interrupted while waiting for the call", e);
        }
    }

    private AvroCodec registered(String name) {
        AvroCodec codec = codecs.get(name);
        if (codec == null) {
            throw new IllegalStateException(
                    "no description of function '"
                            + name
                            + "' is registered: register(FunctionDescription) it first"
                            + " (SatchelGrpcClient.describe or FunctionDescription.of)");
        }
        return codec;
    }

    private URI invokeUri(String name) {
        return base.resolve(
                "v1/functions/"
                        + URLEncoder.encode(name, StandardCharsets.UTF_8).replace("+", "%20")
                        + ":invoke");
    }
}
