package dev.satchel.client;

import com.fasterxml.jackson.databind.JsonNode;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;

import java.math.BigDecimal;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The JSON form of Avro values (the one mapping of {@code bindings/jsonform.py} that REST speaks)
 * read back into the plain Java values {@link AvroValues#fromAvro} gives for the same schema:
 * numbers, strings and booleans as themselves; {@code "NaN"}, {@code "Infinity"}, {@code
 * "-Infinity"} for floats; base64 strings for bytes and fixed; RFC 3339 strings for timestamps
 * ({@link Instant}), {@code YYYY-MM-DD} for dates ({@link LocalDate}), decimal strings for {@code
 * satchel.decimal} ({@link BigDecimal}); a union's value is the bare value of the first branch, in
 * schema order, whose JSON form accepts it.
 */
final class JsonForm {
    private static final String DECIMAL = "satchel.decimal";
    private static final Pattern DATE_TIME =
            Pattern.compile(
                    "(\\d{4})-(\\d{2})-(\\d{2})[Tt ](\\d{2}):(\\d{2}):(\\d{2})"
                            + "(?:\\.(\\d{1,9}))?([Zz]|[+-]\\d{2}:\\d{2})?");
    private static final Pattern DATE = Pattern.compile("(\\d{4})-(\\d{2})-(\\d{2})");

    private JsonForm() {}

    /**
     * The plain Java value of {@code json}, the JSON form of a value of {@code schema}.
     *
     * @param path where {@code json} is, for messages (for example {@code "$"})
     * @throws AvroValues.Mismatch naming the path if {@code json} is not of {@code schema}
     */
    static Object fromJson(Schema schema, JsonNode json, String path) throws AvroValues.Mismatch {
        String logical = schema.getProp("logicalType");
        switch (schema.getType()) {
            case NULL:
                if (json.isNull()) {
                    return null;
                }
                throw mismatch(path, "null", json);
            case BOOLEAN:
                if (json.isBoolean()) {
                    return json.booleanValue();
                }
                throw mismatch(path, "true or false", json);
            case INT:
                if ("date".equals(logical)) {
                    return date(json, path);
                }
                {
                    Long n = integral(json);
                    if (n != null && n >= Integer.MIN_VALUE && n <= Integer.MAX_VALUE) {
                        return n.intValue();
                    }
                    throw mismatch(path, "an integer (int)", json);
                }
            case LONG:
                if ("timestamp-micros".equals(logical) || "timestamp-millis".equals(logical)) {
                    return timestamp(json, path, "timestamp-millis".equals(logical));
                }
                {
                    Long n = integral(json);
                    if (n != null) {
                        return n;
                    }
                    throw mismatch(path, "an integer (long)", json);
                }
            case FLOAT:
                return (float) number(json, path);
            case DOUBLE:
                return number(json, path);
            case STRING:
                if (DECIMAL.equals(logical)) {
                    return decimal(json, path);
                }
                if (json.isTextual()) {
                    return json.textValue();
                }
                throw mismatch(path, "a string", json);
            case BYTES:
                return base64(json, path, -1);
            case FIXED:
                return base64(json, path, schema.getFixedSize());
            case ENUM:
                if (json.isTextual() && schema.hasEnumSymbol(json.textValue())) {
                    return json.textValue();
                }
                throw mismatch(path, "one of " + schema.getEnumSymbols(), json);
            case ARRAY:
                {
                    if (!json.isArray()) {
                        throw mismatch(path, "an array", json);
                    }
                    List<Object> out = new ArrayList<>(json.size());
                    for (int i = 0; i < json.size(); i++) {
                        out.add(
                                fromJson(
                                        schema.getElementType(),
                                        json.get(i),
                                        path + "[" + i + "]"));
                    }
                    return out;
                }
            case MAP:
                {
                    if (!json.isObject()) {
                        throw mismatch(path, "an object", json);
                    }
                    Map<String, Object> out = new LinkedHashMap<>();
                    for (Iterator<Map.Entry<String, JsonNode>> it = json.fields(); it.hasNext(); ) {
                        Map.Entry<String, JsonNode> e = it.next();
                        out.put(
                                e.getKey(),
                                fromJson(
                                        schema.getValueType(),
                                        e.getValue(),
                                        path + "[\"" + e.getKey() + "\"]"));
                    }
                    return out;
                }
            case RECORD:
                return record(schema, json, path);
            case UNION:
                {
                    List<String> tried = new ArrayList<>();
                    for (Schema branch : schema.getTypes()) {
                        try {
                            return fromJson(branch, json, path);
                        } catch (AvroValues.Mismatch e) {
                            tried.add(AvroValues.describe(branch));
                        }
                    }
                    throw mismatch(path, "one of " + String.join(", ", tried), json);
                }
            default:
                throw new AvroValues.Mismatch(path + ": unsupported Avro type " + schema.getType());
        }
    }

    private static Map<String, Object> record(Schema schema, JsonNode json, String path)
            throws AvroValues.Mismatch {
        if (!json.isObject()) {
            throw mismatch(path, "an object (record " + schema.getName() + ")", json);
        }
        for (Iterator<String> names = json.fieldNames(); names.hasNext(); ) {
            String name = names.next();
            if (schema.getField(name) == null) {
                throw new AvroValues.Mismatch(
                        path + ": unknown member \"" + name + "\" of record " + schema.getName());
            }
        }
        Map<String, Object> out = new LinkedHashMap<>();
        for (Schema.Field field : schema.getFields()) {
            JsonNode member = json.get(field.name());
            if (member != null) {
                out.put(field.name(), fromJson(field.schema(), member, path + "." + field.name()));
            } else if (field.hasDefaultValue()) {
                out.put(
                        field.name(),
                        AvroValues.fromAvro(
                                field.schema(), GenericData.get().getDefaultValue(field)));
            } else {
                throw new AvroValues.Mismatch(
                        path + "." + field.name() + ": missing (record " + schema.getName() + ")");
            }
        }
        return out;
    }

    /** An integral JSON number (3 or 3.0), or null. */
    private static Long integral(JsonNode json) {
        if (json.isIntegralNumber()) {
            return json.canConvertToLong() ? json.longValue() : null;
        }
        if (json.isFloatingPointNumber()) {
            double d = json.doubleValue();
            if (d == Math.rint(d) && Math.abs(d) < 0x1p63) {
                return (long) d;
            }
        }
        return null;
    }

    private static double number(JsonNode json, String path) throws AvroValues.Mismatch {
        if (json.isNumber()) {
            return json.doubleValue();
        }
        if (json.isTextual()) {
            switch (json.textValue()) {
                case "NaN":
                    return Double.NaN;
                case "Infinity":
                    return Double.POSITIVE_INFINITY;
                case "-Infinity":
                    return Double.NEGATIVE_INFINITY;
                default:
                    break;
            }
        }
        throw mismatch(path, "a number (or \"NaN\", \"Infinity\", \"-Infinity\")", json);
    }

    private static BigDecimal decimal(JsonNode json, String path) throws AvroValues.Mismatch {
        String text = json.isTextual() ? json.textValue().strip() : null;
        if (json.isIntegralNumber()) {
            return new BigDecimal(json.bigIntegerValue());
        }
        if (text != null) {
            try {
                return new BigDecimal(text);
            } catch (NumberFormatException e) {
                throw mismatch(path, "a decimal number in a string", json);
            }
        }
        throw mismatch(path, "a decimal number in a string", json);
    }

    private static byte[] base64(JsonNode json, String path, int size) throws AvroValues.Mismatch {
        if (!json.isTextual()) {
            throw mismatch(path, "a base64 string", json);
        }
        byte[] bytes;
        try {
            bytes = Base64.getDecoder().decode(json.textValue());
        } catch (IllegalArgumentException e) {
            throw mismatch(path, "a base64 string", json);
        }
        if (size >= 0 && bytes.length != size) {
            throw new AvroValues.Mismatch(
                    path + ": expected " + size + " bytes (fixed), got " + bytes.length);
        }
        return bytes;
    }

    private static LocalDate date(JsonNode json, String path) throws AvroValues.Mismatch {
        Matcher m = json.isTextual() ? DATE.matcher(json.textValue()) : null;
        if (m == null || !m.matches()) {
            throw mismatch(path, "a \"YYYY-MM-DD\" date string", json);
        }
        try {
            return LocalDate.of(
                    Integer.parseInt(m.group(1)),
                    Integer.parseInt(m.group(2)),
                    Integer.parseInt(m.group(3)));
        } catch (java.time.DateTimeException e) {
            throw mismatch(path, "a \"YYYY-MM-DD\" date string", json);
        }
    }

    /** As Python reads it: microseconds (truncated), then milliseconds floored for -millis. */
    private static Instant timestamp(JsonNode json, String path, boolean millis)
            throws AvroValues.Mismatch {
        Matcher m = json.isTextual() ? DATE_TIME.matcher(json.textValue()) : null;
        if (m == null || !m.matches()) {
            throw mismatch(path, "an RFC 3339 date-time string", json);
        }
        try {
            String fraction = m.group(7) == null ? "" : m.group(7);
            int micros = Integer.parseInt((fraction + "000000").substring(0, 6));
            String offset = m.group(8);
            ZoneOffset zone =
                    offset == null || offset.equalsIgnoreCase("z")
                            ? ZoneOffset.UTC
                            : ZoneOffset.of(offset);
            Instant at =
                    LocalDateTime.of(
                                    Integer.parseInt(m.group(1)),
                                    Integer.parseInt(m.group(2)),
                                    Integer.parseInt(m.group(3)),
                                    Integer.parseInt(m.group(4)),
                                    Integer.parseInt(m.group(5)),
                                    Integer.parseInt(m.group(6)),
                                    micros * 1000)
                            .toInstant(zone);
            return millis ? at.truncatedTo(ChronoUnit.MILLIS) : at;
        } catch (java.time.DateTimeException e) { // DateTimeParseException included
            throw mismatch(path, "an RFC 3339 date-time string", json);
        }
    }

    private static AvroValues.Mismatch mismatch(String path, String expected, JsonNode json) {
        String text = json.toString();
        if (text.length() > 40) {
            text = text.substring(0, 37) + "...";
        }
        return new AvroValues.Mismatch(
                path + ": expected " + expected + ", got " + json.getNodeType() + " " + text);
    }
}
