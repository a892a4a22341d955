package dev.satchel.client;

import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;

/**
 * gRPC statuses as SatchelExceptions: the kind from trailing metadata, else from the status code.
 */
final class GrpcErrors {
    static final Metadata.Key<String> KIND = key("x-satchel-error-kind");
    static final Metadata.Key<String> PARAMETER = key("x-satchel-parameter");
    static final Metadata.Key<String> RETRY_AFTER = key("retry-after");

    private GrpcErrors() {}

    static SatchelException from(StatusRuntimeException e, String function) {
        Status status = e.getStatus();
        Metadata trailers = e.getTrailers() != null ? e.getTrailers() : new Metadata();
        String kind = trailers.get(KIND);
        if (kind == null || kind.isEmpty()) {
            kind = kindOf(status.getCode());
        }
        String message =
                status.getDescription() != null ? status.getDescription() : status.getCode().name();
        if (status.getCode() == Status.Code.DEADLINE_EXCEEDED
                && function != null
                && !message.contains(function)) {
            message = function + ": " + message;
        }
        return SatchelException.of(
                kind,
                function,
                message,
                trailers.get(PARAMETER),
                retryAfter(trailers.get(RETRY_AFTER)),
                null,
                e);
    }

    /**
     * The kind of a status that came without {@code x-satchel-error-kind} (say, a client-side
     * deadline).
     */
    static String kindOf(Status.Code code) {
        return switch (code) {
            case DEADLINE_EXCEEDED -> SatchelException.TIMEOUT;
            case INVALID_ARGUMENT -> SatchelException.INVALID_ARGUMENT;
            case NOT_FOUND -> SatchelException.UNKNOWN_FUNCTION;
            case RESOURCE_EXHAUSTED -> SatchelException.OVERLOADED;
            case UNAVAILABLE -> SatchelException.UNAVAILABLE;
            case UNAUTHENTICATED -> SatchelException.UNAUTHORIZED;
            default -> code.name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
        };
    }

    static long retryAfter(String text) {
        if (text == null) {
            return -1;
        }
        try {
            return Long.parseLong(text.trim());
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private static Metadata.Key<String> key(String name) {
        return Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER);
    }
}
