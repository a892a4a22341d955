package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;

import org.junit.jupiter.api.Test;

/**
 * gRPC statuses and trailing metadata as SatchelExceptions (the kinds a live server rarely
 * produces).
 */
class ErrorKindsTest {
    @Test
    void overloadedCarriesRetryAfter() {
        Metadata trailers = new Metadata();
        trailers.put(GrpcErrors.KIND, "overloaded");
        trailers.put(GrpcErrors.RETRY_AFTER, "3");
        StatusRuntimeException status =
                Status.RESOURCE_EXHAUSTED
                        .withDescription("queue full")
                        .asRuntimeException(trailers);
        OverloadedException e =
                assertInstanceOf(OverloadedException.class, GrpcErrors.from(status, "nap"));
        assertEquals(3, e.retryAfterSeconds());
        assertEquals("nap", e.function());
    }

    @Test
    void aStatusWithoutKindMetadataGetsTheKindOfItsCode() {
        SatchelException timeout =
                GrpcErrors.from(Status.DEADLINE_EXCEEDED.asRuntimeException(), "nap");
        assertInstanceOf(CallTimeoutException.class, timeout);
        assertEquals(
                "unavailable",
                GrpcErrors.from(Status.UNAVAILABLE.asRuntimeException(), "f").kind());
        assertEquals("internal", GrpcErrors.from(Status.INTERNAL.asRuntimeException(), "f").kind());
    }

    @Test
    void aBadResultKeepsItsKindAndIsNoRemoteError() {
        Metadata trailers = new Metadata();
        trailers.put(GrpcErrors.KIND, "bad-result");
        SatchelException e =
                GrpcErrors.from(
                        Status.INTERNAL
                                .withDescription("liar: return value: expected float")
                                .asRuntimeException(trailers),
                        "liar");
        assertEquals(SatchelException.BAD_RESULT, e.kind());
        assertEquals(SatchelException.class, e.getClass());
        assertEquals(
                SatchelException.BAD_RESULT,
                RestProblems.kindOf("https://satchel.dev/problems/bad-result"));
    }

    @Test
    void parameterComesFromTrailingMetadata() {
        Metadata trailers = new Metadata();
        trailers.put(GrpcErrors.KIND, "invalid-argument");
        trailers.put(GrpcErrors.PARAMETER, "values");
        InvalidArgumentException e =
                assertInstanceOf(
                        InvalidArgumentException.class,
                        GrpcErrors.from(
                                Status.INVALID_ARGUMENT
                                        .withDescription("bad")
                                        .asRuntimeException(trailers),
                                "scale"));
        assertEquals("values", e.parameter());
    }

    @Test
    void remoteTypeIsTheMessagePrefix() {
        RemoteErrorException e =
                assertInstanceOf(
                        RemoteErrorException.class,
                        SatchelException.of(
                                "remote-error", "f", "KeyError: 'x'", null, -1, null, null));
        assertEquals("KeyError", e.remoteType());
        assertNull(SatchelException.typePrefix("no type here"));
        assertEquals("overloaded", RestProblems.kindOf("https://satchel.dev/problems/overloaded"));
        assertEquals(SatchelException.TIMEOUT, RestProblems.kindOf(504));
    }
}
