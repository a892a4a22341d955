package dev.satchel.client;

import java.util.Objects;

/**
 * What a caller needs to know of a hosted function: its Avro request record and response schemas
 * (JSON), their CRC-64-AVRO fingerprints (16 lowercase hex digits), documentation and bundle
 * reference. The gRPC client gets it from {@code Describe}; a REST caller builds it with {@link
 * #of} from the schemas.
 */
public record FunctionDescription(
        String name,
        String doc,
        String requestSchema,
        String responseSchema,
        String requestFingerprint,
        String responseFingerprint,
        String bundle) {

    public FunctionDescription {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(requestSchema, "requestSchema");
        Objects.requireNonNull(responseSchema, "responseSchema");
        doc = doc == null ? "" : doc;
        bundle = bundle == null ? "" : bundle;
    }

    /**
     * The description of {@code name} from its schemas alone (for example from the bundle's
     * metadata document), the fingerprints computed here.
     *
     * @throws IllegalArgumentException if a schema is not valid Avro
     */
    public static FunctionDescription of(String name, String requestSchema, String responseSchema) {
        return new FunctionDescription(
                name,
                "",
                requestSchema,
                responseSchema,
                AvroCodec.fingerprint(AvroCodec.parse(requestSchema, name + " request schema")),
                AvroCodec.fingerprint(AvroCodec.parse(responseSchema, name + " response schema")),
                "");
    }

    static FunctionDescription fromProto(dev.satchel.grpc.v1.FunctionDescription d) {
        return new FunctionDescription(
                d.getName(),
                d.getDoc(),
                d.getRequestSchema(),
                d.getResponseSchema(),
                d.getRequestFingerprint(),
                d.getResponseFingerprint(),
                d.getBundle());
    }
}
