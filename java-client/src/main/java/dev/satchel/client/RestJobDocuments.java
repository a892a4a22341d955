package dev.satchel.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.Locale;
import java.util.function.Function;

/**
 * REST job documents ({@code serving/rest/jobs.py}) as {@link Job}s: {@code id}, {@code function},
 * {@code state} (lowercase), {@code created_at}/{@code finished_at} (RFC 3339), and {@code result}
 * (JSON form, decoded with the function's codec) or {@code error} (a problem document with its
 * {@code kind}).
 */
final class RestJobDocuments {
    private static final ObjectMapper JSON = new ObjectMapper();

    private RestJobDocuments() {}

    /**
     * The job of a JSON job document; {@code codecOf} gives the codec of a function (null when the
     * client has none).
     *
     * @throws SatchelException kind {@code malformed-response} if the body is not a job document
     * @throws IllegalStateException if the job succeeded and {@code codecOf} has no codec to decode
     *     its result with
     */
    static Job parse(byte[] body, String what, Function<String, AvroCodec> codecOf) {
        JsonNode doc;
        try {
            doc = JSON.readTree(new String(body, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw malformed(what, "not JSON: " + e.getMessage());
        }
        if (doc == null || !doc.isObject()) {
            throw malformed(what, "not a JSON object");
        }
        String id = required(doc, "id", what);
        String function = required(doc, "function", what);
        String stateText = required(doc, "state", what);
        Job.State state;
        try {
            state = Job.State.valueOf(stateText.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw malformed(what, "job " + id + " has no known state: " + stateText);
        }
        Object result = null;
        SatchelException error = null;
        if (state == Job.State.SUCCEEDED) {
            AvroCodec codec = codecOf.apply(function);
            if (codec == null) {
                throw new IllegalStateException(
                        "job "
                                + id
                                + " of function '"
                                + function
                                + "' succeeded, but no description of '"
                                + function
                                + "' is registered to decode its result:"
                                + " register(FunctionDescription) it first");
            }
            JsonNode json = doc.get("result");
            if (json == null) {
                throw malformed(what, "job " + id + " succeeded but its document has no result");
            }
            result = codec.decodeJsonResponse(json);
        } else if (state == Job.State.FAILED) {
            JsonNode problem = doc.get("error");
            if (problem == null || !problem.isObject()) {
                throw malformed(what, "job " + id + " failed but its document has no error");
            }
            error = RestProblems.fromJobError(problem, id, function);
        }
        return new Job(
                id,
                function,
                state,
                result,
                error,
                time(doc, "created_at", what),
                time(doc, "finished_at", what));
    }

    private static String required(JsonNode doc, String field, String what) {
        JsonNode value = doc.get(field);
        if (value == null || !value.isTextual()) {
            throw malformed(what, "the job document has no string '" + field + "': " + doc);
        }
        return value.textValue();
    }

    private static Instant time(JsonNode doc, String field, String what) {
        JsonNode value = doc.get(field);
        if (value == null || value.isNull()) {
            return null;
        }
        try {
            return OffsetDateTime.parse(value.asText()).toInstant();
        } catch (DateTimeParseException e) {
            throw malformed(what, "'" + field + "' is not an RFC 3339 time: " + value);
        }
    }

    private static SatchelException malformed(String what, String why) {
        return new SatchelException("malformed-response", null, what + ": " + why);
    }
}
