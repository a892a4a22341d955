package dev.satchel.client;

import com.google.protobuf.ByteString;

import dev.satchel.grpc.v1.CancelRequest;
import dev.satchel.grpc.v1.DescribeRequest;
import dev.satchel.grpc.v1.FunctionsGrpc;
import dev.satchel.grpc.v1.GetJobRequest;
import dev.satchel.grpc.v1.InvokeRequest;
import dev.satchel.grpc.v1.InvokeResponse;
import dev.satchel.grpc.v1.ListRequest;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * A client of a Satchel server's gRPC face ({@code satchel.v1.Functions}, {@code satchel serve
 * --grpc-port N}). Arguments and results are plain Java values, encoded as Avro with the schemas
 * {@code Describe} returns (cached per function; described again once if the server's schema
 * changed). Failures are {@link SatchelException}s. Thread-safe; close it to release the channel.
 *
 * <pre>{@code
 * try (var client = new SatchelGrpcClient("localhost", 50051)) {
 *     Object sum = client.invoke("add", Map.of("a", 1.5, "b", 2.0));   // 3.5
 * }
 * }</pre>
 */
public final class SatchelGrpcClient implements AutoCloseable {
    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    private final ManagedChannel channel;
    private final boolean ownsChannel;
    private final FunctionsGrpc.FunctionsBlockingStub stub;
    private final Map<String, AvroCodec> codecs = new ConcurrentHashMap<>();

    /** A plaintext connection to {@code host:port}, without a token. */
    public SatchelGrpcClient(String host, int port) {
        this(host, port, null);
    }

    /**
     * A plaintext connection to {@code host:port}; {@code token} (or null) is sent as a bearer
     * token.
     */
    public SatchelGrpcClient(String host, int port, String token) {
        this(
                Grpc.newChannelBuilderForAddress(host, port, InsecureChannelCredentials.create())
                        .build(),
                token,
                true);
    }

    /**
     * A client over a channel of the caller's (TLS, load balancing...), which the caller closes.
     */
    public SatchelGrpcClient(ManagedChannel channel, String token) {
        this(channel, token, false);
    }

    private SatchelGrpcClient(ManagedChannel channel, String token, boolean ownsChannel) {
        this.channel = Objects.requireNonNull(channel, "channel");
        this.ownsChannel = ownsChannel;
        FunctionsGrpc.FunctionsBlockingStub base = FunctionsGrpc.newBlockingStub(channel);
        if (token != null) {
            Metadata headers = new Metadata();
            headers.put(AUTHORIZATION, "Bearer " + token);
            base = base.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
        }
        this.stub = base;
    }

    /** The schemas, fingerprints and documentation of the hosted function {@code name}. */
    public FunctionDescription describe(String name) {
        try {
            return FunctionDescription.fromProto(
                    stub.describe(DescribeRequest.newBuilder().setFunction(name).build()));
        } catch (StatusRuntimeException e) {
            throw GrpcErrors.from(e, name);
        }
    }

    /** Every hosted function, by name. */
    public List<FunctionDescription> list() {
        try {
            List<FunctionDescription> out = new ArrayList<>();
            stub.list(ListRequest.getDefaultInstance())
                    .getFunctionsList()
                    .forEach(d -> out.add(FunctionDescription.fromProto(d)));
            return out;
        } catch (StatusRuntimeException e) {
            throw GrpcErrors.from(e, null);
        }
    }

    /** The codec of {@code name} (described on first use, then cached). */
    public AvroCodec codec(String name) {
        AvroCodec codec = codecs.get(name);
        if (codec == null) { // described outside the map's lock: an RPC must not block other names
            codec = AvroCodec.of(describe(name));
            AvroCodec raced = codecs.putIfAbsent(name, codec);
            codec = raced != null ? raced : codec;
        }
        return codec;
    }

    /**
     * Call {@code name} with {@code arguments} (parameter name to value) and wait for its result.
     */
    public Object invoke(String name, Map<String, ?> arguments) {
        return invoke(name, arguments, null);
    }

    /**
     * Call {@code name} and wait at most {@code deadline} (null: no deadline) for its result; past
     * it the call is cancelled on the server and a {@link CallTimeoutException} is thrown.
     */
    public Object invoke(String name, Map<String, ?> arguments, Duration deadline) {
        return withCodec(
                name,
                codec -> {
                    FunctionsGrpc.FunctionsBlockingStub call = stub;
                    if (deadline != null) {
                        call = call.withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS);
                    }
                    InvokeResponse response = call.invoke(request(codec, arguments));
                    return codec.decodeResponse(
                            response.getPayload().toByteArray(), response.getResponseFingerprint());
                });
    }

    /**
     * Call {@code name} with an Avro payload encoded by the caller; returns the result's Avro
     * payload.
     */
    public byte[] invokeRaw(String name, byte[] payload, String requestFingerprint) {
        try {
            InvokeRequest request =
                    InvokeRequest.newBuilder()
                            .setFunction(name)
                            .setPayload(ByteString.copyFrom(payload))
                            .setRequestFingerprint(requestFingerprint)
                            .build();
            return stub.invoke(request).getPayload().toByteArray();
        } catch (StatusRuntimeException e) {
            throw GrpcErrors.from(e, name);
        }
    }

    /**
     * Start a long-running call of {@code name}; returns at once with the job (QUEUED or RUNNING).
     */
    public Job submit(String name, Map<String, ?> arguments) {
        return withCodec(name, codec -> job(stub.submit(request(codec, arguments))));
    }

    /** The job {@code id}: its state, and its result or error once finished. */
    public Job getJob(String id) {
        try {
            return job(stub.getJob(GetJobRequest.newBuilder().setId(id).build()));
        } catch (StatusRuntimeException e) {
            throw GrpcErrors.from(e, null);
        }
    }

    /** Cancel the job {@code id}; returns it (CANCELLED, or its final state if it had finished). */
    public Job cancel(String id) {
        try {
            return job(stub.cancel(CancelRequest.newBuilder().setId(id).build()));
        } catch (StatusRuntimeException e) {
            throw GrpcErrors.from(e, null);
        }
    }

    /**
     * Poll the job {@code id} until it is done (every 10 ms at first, backing off to 500 ms) and
     * return it; a {@link CallTimeoutException} if it is still running after {@code timeout}.
     */
    public Job awaitJob(String id, Duration timeout) {
        return JobWaiting.await(id, timeout, this::getJob);
    }

    @Override
    public void close() {
        if (!ownsChannel) {
            return;
        }
        channel.shutdown();
        try {
            if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
                channel.shutdownNow();
            }
        } catch (InterruptedException e) {
            channel.shutdownNow();
            Thread.currentThread().interrupt();
        }
    }

    private interface Call<T> {
        T run(AvroCodec codec);
    }

    /**
     * Run {@code call} with the function's codec; if the server's schema changed, describe it once
     * more.
     */
    private <T> T withCodec(String name, Call<T> call) {
        AvroCodec codec = codec(name);
        try {
            try {
                return call.run(codec);
            } catch (StatusRuntimeException e) {
                SatchelException error = GrpcErrors.from(e, name);
                if (!SatchelException.FINGERPRINT_MISMATCH.equals(error.kind())) {
                    throw error;
                }
                codecs.remove(name, codec);
                return call.run(codec(name));
            }
        } catch (StatusRuntimeException e) {
            throw GrpcErrors.from(e, name);
        }
    }

    private static InvokeRequest request(AvroCodec codec, Map<String, ?> arguments) {
        return InvokeRequest.newBuilder()
                .setFunction(codec.function().name())
                .setPayload(ByteString.copyFrom(codec.encodeRequest(arguments)))
                .setRequestFingerprint(codec.requestFingerprint())
                .build();
    }

    private Job job(dev.satchel.grpc.v1.Job job) {
        Object result = null;
        SatchelException error = null;
        Job.State state =
                switch (job.getState()) {
                    case QUEUED -> Job.State.QUEUED;
                    case RUNNING -> Job.State.RUNNING;
                    case SUCCEEDED -> Job.State.SUCCEEDED;
                    case FAILED -> Job.State.FAILED;
                    case CANCELLED -> Job.State.CANCELLED;
                    default ->
                            throw new SatchelException(
                                    "malformed-response",
                                    job.getFunction(),
                                    "job "
                                            + job.getId()
                                            + " has no known state: "
                                            + job.getState());
                };
        if (state == Job.State.SUCCEEDED) {
            result =
                    codec(job.getFunction())
                            .decodeResponse(
                                    job.getPayload().toByteArray(), job.getResponseFingerprint());
        } else if (state == Job.State.FAILED) {
            error =
                    SatchelException.of(
                            job.getError().getKind(),
                            job.getFunction(),
                            job.getError().getMessage(),
                            null,
                            -1,
                            null,
                            null);
        }
        return new Job(
                job.getId(),
                job.getFunction(),
                state,
                result,
                error,
                seconds(job.getCreatedAt()),
                job.getFinishedAt() > 0 ? seconds(job.getFinishedAt()) : null);
    }

    private static Instant seconds(double epochSeconds) {
        long whole = (long) Math.floor(epochSeconds);
        return Instant.ofEpochSecond(whole, Math.round((epochSeconds - whole) * 1e9));
    }
}
