package dev.satchel.client;

import dev.satchel.wire.Fingerprint;

import org.apache.avro.AvroRuntimeException;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The Avro binary payloads of one hosted function, shared by the gRPC and REST clients: arguments
 * (a map of parameter name to plain Java value, see {@link AvroValues}) to the bytes of its request
 * record, and result bytes back to a plain Java value. Built from a {@link FunctionDescription},
 * whose fingerprints it checks against the CRC-64-AVRO of its schemas' Parsing Canonical Forms.
 * Immutable and thread-safe.
 */
public final class AvroCodec {
    private final FunctionDescription function;
    private final Schema request;
    private final Schema response;

    private AvroCodec(FunctionDescription function, Schema request, Schema response) {
        this.function = function;
        this.request = request;
        this.response = response;
    }

    /**
     * The codec of {@code function}.
     *
     * @throws IllegalArgumentException if a schema is not valid Avro or the request schema is not a
     *     record
     * @throws SatchelException (kind {@code fingerprint-mismatch}) if a fingerprint the description
     *     gives is not the one of its schema
     */
    public static AvroCodec of(FunctionDescription function) {
        String name = function.name();
        Schema request = parse(function.requestSchema(), name + " request schema");
        Schema response = parse(function.responseSchema(), name + " response schema");
        if (request.getType() != Schema.Type.RECORD) {
            throw new IllegalArgumentException(
                    name
                            + " request schema: expected a record (one field per parameter), got "
                            + request.getType());
        }
        check(name, "request", request, function.requestFingerprint());
        check(name, "response", response, function.responseFingerprint());
        return new AvroCodec(function, request, response);
    }

    /** The description this codec was built from. */
    public FunctionDescription function() {
        return function;
    }

    /** The request schema's fingerprint (16 lowercase hex digits), as servers expect it. */
    public String requestFingerprint() {
        return fingerprint(request);
    }

    /** The response schema's fingerprint (16 lowercase hex digits). */
    public String responseFingerprint() {
        return fingerprint(response);
    }

    /**
     * The Avro binary of the request record holding {@code arguments}; parameters left out take
     * their defaults.
     *
     * @throws InvalidArgumentException naming the parameter if one is unknown, missing or of a type
     *     its schema does not allow (nothing is sent)
     */
    public byte[] encodeRequest(Map<String, ?> arguments) {
        String name = function.name();
        for (String key : arguments.keySet()) {
            if (request.getField(key) == null) {
                List<String> known = new ArrayList<>();
                request.getFields().forEach(f -> known.add(f.name()));
                throw new InvalidArgumentException(
                        name,
                        key,
                        name
                                + ": unknown parameter '"
                                + key
                                + "' (its parameters: "
                                + String.join(", ", known)
                                + ")");
            }
        }
        GenericData.Record record = new GenericData.Record(request);
        for (Schema.Field field : request.getFields()) {
            String parameter = field.name();
            if (arguments.containsKey(parameter)) {
                try {
                    record.put(
                            field.pos(),
                            AvroValues.toAvro(field.schema(), arguments.get(parameter), parameter));
                } catch (AvroValues.Mismatch e) {
                    throw new InvalidArgumentException(
                            name,
                            parameter,
                            name + ": parameter '" + parameter + "': " + e.getMessage());
                }
            } else if (field.hasDefaultValue()) {
                record.put(
                        field.pos(),
                        GenericData.get()
                                .deepCopy(
                                        field.schema(), GenericData.get().getDefaultValue(field)));
            } else {
                throw new InvalidArgumentException(
                        name, parameter, name + ": missing parameter '" + parameter + "'");
            }
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        BinaryEncoder encoder = EncoderFactory.get().directBinaryEncoder(out, null);
        try {
            new GenericDatumWriter<Object>(request).write(record, encoder);
            encoder.flush();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /**
     * The plain Java value of a result encoded with the response schema.
     *
     * @param fingerprint the response fingerprint the server sent with it (null or empty: not
     *     checked)
     * @throws SatchelException kind {@code fingerprint-mismatch} if the server wrote another
     *     schema, kind {@code malformed-result} if the bytes are not one value of the response
     *     schema
     */
    public Object decodeResponse(byte[] payload, String fingerprint) {
        String expected = responseFingerprint();
        if (fingerprint != null
                && !fingerprint.isEmpty()
                && !fingerprint.trim().equalsIgnoreCase(expected)) {
            throw new SatchelException(
                    SatchelException.FINGERPRINT_MISMATCH,
                    function.name(),
                    function.name()
                            + ": the server wrote the result with response schema "
                            + fingerprint
                            + ", this client knows "
                            + expected
                            + " (describe the function again)");
        }
        BinaryDecoder decoder = DecoderFactory.get().binaryDecoder(payload, null);
        try {
            Object datum = new GenericDatumReader<Object>(response).read(null, decoder);
            if (!decoder.isEnd()) {
                throw new IOException("bytes are left after the value");
            }
            return AvroValues.fromAvro(response, datum);
        } catch (IOException | AvroRuntimeException | ClassCastException e) {
            throw new SatchelException(
                    "malformed-result",
                    function.name(),
                    function.name()
                            + ": the result ("
                            + payload.length
                            + " bytes) does not decode with the response schema: "
                            + e.getMessage(),
                    e);
        }
    }

    /**
     * The plain Java value of a result in JSON form (a REST job document's {@code result}): the
     * same value {@link #decodeResponse} gives for its Avro bytes. The JSON form carries no
     * fingerprint.
     *
     * @throws SatchelException kind {@code malformed-result} if {@code json} is not a value of the
     *     response schema (naming the path inside it)
     */
    Object decodeJsonResponse(com.fasterxml.jackson.databind.JsonNode json) {
        try {
            return JsonForm.fromJson(response, json, "$");
        } catch (AvroValues.Mismatch e) {
            throw new SatchelException(
                    "malformed-result",
                    function.name(),
                    function.name()
                            + ": the JSON result does not fit the response schema "
                            + responseFingerprint()
                            + ": "
                            + e.getMessage(),
                    e);
        }
    }

    /** CRC-64-AVRO of the schema's Parsing Canonical Form, as 16 lowercase hex digits. */
    public static String fingerprint(Schema schema) {
        return Fingerprint.toHex(Fingerprint.crc64Avro(SchemaNormalization.toParsingForm(schema)));
    }

    /**
     * The schema of {@code json}; IllegalArgumentException naming {@code what} if it is not valid
     * Avro.
     */
    static Schema parse(String json, String what) {
        try {
            return new Schema.Parser().parse(json);
        } catch (AvroRuntimeException e) {
            throw new IllegalArgumentException(
                    what + " is not a valid Avro schema: " + e.getMessage(), e);
        }
    }

    private static void check(String name, String which, Schema schema, String given) {
        if (given == null || given.isEmpty()) {
            return;
        }
        String computed = fingerprint(schema);
        if (!computed.equalsIgnoreCase(given.trim())) {
            throw new SatchelException(
                    SatchelException.FINGERPRINT_MISMATCH,
                    name,
                    name
                            + ": the "
                            + which
                            + " schema's fingerprint is "
                            + computed
                            + ", the description says "
                            + given
                            + " (Parsing Canonical Form: "
                            + SchemaNormalization.toParsingForm(schema)
                            + ")");
        }
    }
}
