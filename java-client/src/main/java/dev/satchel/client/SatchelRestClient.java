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
 * Async jobs ({@code POST /v1/functions/NAME/jobs}, {@code GET} and {@code DELETE /v1/jobs/ID})
 * have the gRPC client's methods and {@link Job}s: {@link #submit}, {@link #getJob}, {@link
 * #awaitJob}, {@link #cancel}. Thread-safe (java.net.http).
 *
 * <pre>{@code
 * var rest = new SatchelRestClient(URI.create("http://localhost:8000"));
 * rest.register(FunctionDescription.of("add", requestSchemaJson, "\"double\""));
 * Object sum = rest.invoke("add", Map.of("a", 1.5, "b", 2.0));   // 3.5
 * Job job = rest.awaitJob(rest.submit("add", Map.of("a", 1, "b", 2)).id(), Duration.ofMinutes(1));
 * }</pre>
 */
public final class SatchelRestClient {
    static final String AVRO = "application/avro";
    static final String JSON = "application/json";
    static final String FINGERPRINT = "X-Satchel-Fingerprint";
    static final String TIMEOUT = "X-Satchel-Timeout";

    /**
     * How much longer than a call's deadline the HTTP request may take: the server answers 504
     * itself, after stopping the call (a worker stuck in C code gets 2 s to stop, then is killed).
     */
    static final Duration DEADLINE_MARGIN = Duration.ofSeconds(10);

    /**
     * How long a job request (submit, status, cancel) may take: each answers at once, but a cancel
     * waits for the call to stop in its worker (a worker stuck in C code gets 2 s, then is killed).
     */
    static final Duration JOB_REQUEST_TIMEOUT = Duration.ofSeconds(30);

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
                request(invokeUri(name))
                        .POST(HttpRequest.BodyPublishers.ofByteArray(body))
                        .header("Content-Type", AVRO)
                        .header("Accept", AVRO)
                        .header(FINGERPRINT, codec.requestFingerprint());
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

    /**
     * Start a long-running call of the registered function {@code name} ({@code POST
     * /v1/functions/NAME/jobs}, an Avro body); returns at once with the job (QUEUED or RUNNING).
     *
     * @throws InvalidArgumentException naming the parameter (nothing is sent), {@link
     *     UnknownFunctionException}, {@link OverloadedException} (too many unfinished jobs), ...
     */
    public Job submit(String name, Map<String, ?> arguments) {
        return submit(registered(name).function(), arguments);
    }

    /**
     * Start a long-running call of {@code function}; returns at once with the job. Also registers
     * {@code function}, so that {@link #getJob} can decode the job's result.
     */
    public Job submit(FunctionDescription function, Map<String, ?> arguments) {
        String name = function.name();
        AvroCodec codec = codecs.get(name);
        if (codec == null || !codec.function().equals(function)) {
            codec = AvroCodec.of(function);
            codecs.put(name, codec);
        }
        byte[] body = codec.encodeRequest(arguments);
        HttpRequest request =
                request(functionUri(name, "/jobs"))
                        .POST(HttpRequest.BodyPublishers.ofByteArray(body))
                        .header("Content-Type", AVRO)
                        .header("Accept", JSON)
                        .header(FINGERPRINT, codec.requestFingerprint())
                        .timeout(JOB_REQUEST_TIMEOUT)
                        .build();
        HttpResponse<byte[]> response = send(request, name, null);
        if (response.statusCode() != 202) {
            throw RestProblems.from(response, name);
        }
        return job(response, "submitting a job of " + name);
    }

    /**
     * The job {@code id} ({@code GET /v1/jobs/ID}): its state, and its result or error once
     * finished. The result is decoded with the registered description of the job's function.
     *
     * @throws UnknownJobException naming the id if the server has no such job (or its result
     *     expired)
     * @throws IllegalStateException if the job succeeded but its function is not registered
     */
    public Job getJob(String id) {
        HttpRequest request =
                request(jobUri(id))
                        .GET()
                        .header("Accept", JSON)
                        .timeout(JOB_REQUEST_TIMEOUT)
                        .build();
        return jobRequest(request, "job " + id);
    }

    /**
     * Cancel the job {@code id} ({@code DELETE /v1/jobs/ID}; its call is interrupted in its
     * worker); returns it: CANCELLED, or its final state if it had finished.
     *
     * @throws UnknownJobException naming the id if the server has no such job
     */
    public Job cancel(String id) {
        HttpRequest request =
                request(jobUri(id))
                        .DELETE()
                        .header("Accept", JSON)
                        .timeout(JOB_REQUEST_TIMEOUT)
                        .build();
        return jobRequest(request, "cancelling job " + id);
    }

    /**
     * Poll the job {@code id} until it is done (every 10 ms at first, backing off to 500 ms) and
     * return it; a {@link CallTimeoutException} naming the job if it is still running after {@code
     * timeout} (it keeps running: cancel it, or wait again).
     */
    public Job awaitJob(String id, Duration timeout) {
        return JobWaiting.await(id, timeout, this::getJob);
    }

    private Job jobRequest(HttpRequest request, String what) {
        HttpResponse<byte[]> response = send(request, null, null);
        if (response.statusCode() != 200) {
            throw RestProblems.from(response, null);
        }
        return job(response, what);
    }

    private Job job(HttpResponse<byte[]> response, String what) {
        String type = response.headers().firstValue("content-type").orElse("");
        if (!type.toLowerCase(Locale.ROOT).startsWith(JSON)) {
            throw new SatchelException(
                    "malformed-response",
                    null,
                    what + ": the server answered " + type + ", not " + JSON);
        }
        return RestJobDocuments.parse(response.body(), what, codecs::get);
    }

    /** A request to {@code uri} over HTTP/1.1, with the token if there is one (no timeout). */
    private HttpRequest.Builder request(URI uri) {
        HttpRequest.Builder request =
                HttpRequest.newBuilder(uri)
                        // no cleartext HTTP/2 upgrade (h2c): the server speaks HTTP/1.1, and an
                        // upgrade request with a body loses the body there
                        .version(HttpClient.Version.HTTP_1_1);
        if (token != null) {
            request.header("Authorization", "Bearer " + token);
        }
        return request;
    }

    /**
     * Send {@code request} about {@code name} (null: a job); {@code deadline} is the call's, or
     * null when the request has only the client's own timeout.
     */
    private HttpResponse<byte[]> send(HttpRequest request, String name, Duration deadline) {
        String subject = name != null ? name : request.method() + " " + request.uri().getPath();
        try {
            return http.send(request, HttpResponse.BodyHandlers.ofByteArray());
        } catch (HttpTimeoutException e) {
            if (deadline != null) {
                throw new CallTimeoutException(
                        name, subject + ": no answer within the deadline " + deadline, e);
            }
            throw new SatchelException(
                    SatchelException.UNAVAILABLE,
                    name,
                    subject
                            + ": "
                            + base
                            + " did not answer within "
                            + request.timeout().orElse(null),
                    e);
        } catch (IOException e) {
            throw new SatchelException(
                    SatchelException.UNAVAILABLE,
                    name,
                    subject + ": cannot reach " + base + ": " + e,
                    e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SatchelException(
                    "cancelled", name, subject + ": interrupted while waiting for the answer", e);
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
        return functionUri(name, ":invoke");
    }

    private URI functionUri(String name, String suffix) {
        return base.resolve("v1/functions/" + pathSegment(name) + suffix);
    }

    private URI jobUri(String id) {
        if (id == null || id.isEmpty()) {
            throw new IllegalArgumentException("job id: expected a non-empty string, got " + id);
        }
        return base.resolve("v1/jobs/" + pathSegment(id));
    }

    private static String pathSegment(String text) {
        return URLEncoder.encode(text, StandardCharsets.UTF_8).replace("+", "%20");
    }
}
