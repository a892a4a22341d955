package dev.satchel.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;

/** REST error responses (RFC 9457 problem documents) as SatchelExceptions. */
final class RestProblems {
    private static final ObjectMapper JSON = new ObjectMapper();

    private RestProblems() {}

    static SatchelException from(HttpResponse<byte[]> response, String function) {
        String body = new String(response.body(), StandardCharsets.UTF_8);
        JsonNode problem = null;
        try {
            JsonNode parsed = JSON.readTree(body);
            if (parsed != null && parsed.isObject()) {
                problem = parsed;
            }
        } catch (IOException e) {
            // not JSON: described by its status below
        }
        int status = response.statusCode();
        String kind = problem != null ? kindOf(text(problem, "type")) : null;
        if (kind == null) {
            kind = kindOf(status);
        }
        String detail = problem != null ? text(problem, "detail") : null;
        String message =
                detail != null
                        ? detail
                        : "HTTP " + status + (body.isBlank() ? "" : ": " + abbreviate(body));
        if (function != null && !message.contains(function)) {
            message = function + ": " + message;
        }
        long retryAfter =
                GrpcErrors.retryAfter(response.headers().firstValue("retry-after").orElse(null));
        String parameter = problem != null ? text(problem, "parameter") : null;
        String remoteType = problem != null ? text(problem, "remote_type") : null;
        return SatchelException.of(
                kind, function, message, parameter, retryAfter, remoteType, null);
    }

    /**
     * The failure of a job: the {@code error} member of a REST job document (the problem document
     * {@code :invoke} would have answered, with its {@code kind}).
     */
    static SatchelException fromJobError(JsonNode error, String jobId, String function) {
        String kind = text(error, "kind");
        if (kind == null) {
            kind = kindOf(text(error, "type"));
        }
        if (kind == null) {
            JsonNode status = error.get("status");
            kind =
                    status != null && status.canConvertToInt()
                            ? kindOf(status.intValue())
                            : "internal";
        }
        String detail = text(error, "detail");
        if (detail == null) {
            detail = text(error, "title") != null ? text(error, "title") : kind;
        }
        String message = detail.contains(function) ? detail : function + ": " + detail;
        return SatchelException.of(
                kind,
                function,
                message + " (job " + jobId + ")",
                text(error, "parameter"),
                -1,
                text(error, "remote_type"),
                null);
    }

    /** "invalid-argument" of "https://satchel.dev/problems/invalid-argument". */
    static String kindOf(String type) {
        if (type == null || type.isEmpty() || type.equals("about:blank")) {
            return null;
        }
        return type.substring(type.lastIndexOf('/') + 1);
    }

    static String kindOf(int status) {
        return switch (status) {
            case 400 -> SatchelException.INVALID_ARGUMENT;
            case 401, 403 -> SatchelException.UNAUTHORIZED;
            case 404 -> SatchelException.UNKNOWN_FUNCTION;
            case 429 -> SatchelException.OVERLOADED;
            case 502 -> SatchelException.WORKER_CRASHED;
            case 503 -> SatchelException.UNAVAILABLE;
            case 504 -> SatchelException.TIMEOUT;
            default -> "http-" + status;
        };
    }

    private static String text(JsonNode node, String field) {
        JsonNode value = node.get(field);
        return value == null || value.isNull() ? null : value.asText();
    }

    private static String abbreviate(String text) {
        String line = text.strip().replace('\n', ' ');
        return line.length() > 200 ? line.substring(0, 197) + "..." : line;
    }
}
