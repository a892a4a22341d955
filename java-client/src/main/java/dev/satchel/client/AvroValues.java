package dev.satchel.client;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.time.LocalDate;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Plain Java values to Avro's generic representation for a schema, and back. In: Boolean; Integer,
 * Long, Short, Byte, BigInteger for int/long; any Number for float/double; CharSequence for strings
 * and enum symbols; byte[] or ByteBuffer for bytes/fixed; Collection or Object[] for arrays; Map
 * with String keys for maps and records (missing record fields take their defaults); LocalDate for
 * {@code date}, Instant for {@code timestamp-micros}/{@code timestamp-millis}, BigDecimal for
 * {@code satchel.decimal}. Out: String, Integer, Long, Float, Double, Boolean, byte[], List,
 * LinkedHashMap (records in field order), and LocalDate / Instant / BigDecimal for those logical
 * types.
 */
final class AvroValues {
    private static final String DECIMAL = "satchel.decimal";

    private AvroValues() {}

    /** A value that does not fit its schema; the message starts with the path to it. */
    static final class Mismatch extends Exception {
        private static final long serialVersionUID = 1L;

        Mismatch(String message) {
            super(message, null, false, false);
        }
    }

    static Object toAvro(Schema schema, Object value, String path) throws Mismatch {
        String logical = schema.getProp("logicalType");
        switch (schema.getType()) {
            case NULL:
                if (value == null) {
                    return null;
                }
                throw mismatch(path, "null", value);
            case BOOLEAN:
                if (value instanceof Boolean) {
                    return value;
                }
                throw mismatch(path, "a boolean", value);
            case INT:
                {
                    if ("date".equals(logical) && value instanceof LocalDate date) {
                        return Math.toIntExact(date.toEpochDay());
                    }
                    Long n = integral(value);
                    if (n != null && n >= Integer.MIN_VALUE && n <= Integer.MAX_VALUE) {
                        return n.intValue();
                    }
                    throw mismatch(
                            path,
                            "date".equals(logical) ? "a LocalDate" : "an int (32-bit integer)",
                            value);
                }
            case LONG:
                {
                    if (value instanceof Instant instant) {
                        if ("timestamp-micros".equals(logical)) {
                            return ChronoUnit.MICROS.between(Instant.EPOCH, instant);
                        }
                        if ("timestamp-millis".equals(logical)) {
                            return instant.toEpochMilli();
                        }
                    }
                    Long n = integral(value);
                    if (n != null) {
                        return n;
                    }
                    throw mismatch(
                            path,
                            logical != null && logical.startsWith("timestamp")
                                    ? "an Instant"
                                    : "a long (64-bit integer)",
                            value);
                }
            case FLOAT:
                if (value instanceof Number n) {
                    return n.floatValue();
                }
                throw mismatch(path, "a number (float)", value);
            case DOUBLE:
                if (value instanceof Number n) {
                    return n.doubleValue();
                }
                throw mismatch(path, "a number (double)", value);
            case STRING:
                if (value instanceof CharSequence text) {
                    return text.toString();
                }
                if (DECIMAL.equals(logical) && value instanceof BigDecimal decimal) {
                    return decimal.toString();
                }
                throw mismatch(path, DECIMAL.equals(logical) ? "a BigDecimal" : "a string", value);
            case BYTES:
                if (value instanceof byte[] bytes) {
                    return ByteBuffer.wrap(bytes);
                }
                if (value instanceof ByteBuffer buffer) {
                    return buffer.duplicate();
                }
                throw mismatch(path, "bytes (byte[] or ByteBuffer)", value);
            case FIXED:
                if (value instanceof byte[] bytes && bytes.length == schema.getFixedSize()) {
                    return new GenericData.Fixed(schema, bytes.clone());
                }
                throw mismatch(
                        path,
                        schema.getFixedSize() + " bytes (fixed " + schema.getFullName() + ")",
                        value);
            case ENUM:
                {
                    String symbol =
                            value instanceof CharSequence text
                                    ? text.toString()
                                    : value instanceof Enum<?> e ? e.name() : null;
                    if (symbol != null && schema.hasEnumSymbol(symbol)) {
                        return new GenericData.EnumSymbol(schema, symbol);
                    }
                    throw mismatch(path, "one of " + schema.getEnumSymbols(), value);
                }
            case ARRAY:
                {
                    List<?> items = asList(value);
                    if (items == null) {
                        throw mismatch(path, "a list", value);
                    }
                    GenericData.Array<Object> out = new GenericData.Array<>(items.size(), schema);
                    int i = 0;
                    for (Object item : items) {
                        out.add(toAvro(schema.getElementType(), item, path + "[" + i++ + "]"));
                    }
                    return out;
                }
            case MAP:
                {
                    if (!(value instanceof Map<?, ?> map)) {
                        throw mismatch(path, "a map with string keys", value);
                    }
                    Map<String, Object> out = new LinkedHashMap<>();
                    for (Map.Entry<?, ?> e : map.entrySet()) {
                        if (!(e.getKey() instanceof CharSequence key)) {
                            throw mismatch(path, "a map with string keys", value);
                        }
                        out.put(
                                key.toString(),
                                toAvro(
                                        schema.getValueType(),
                                        e.getValue(),
                                        path + "[\"" + key + "\"]"));
                    }
                    return out;
                }
            case RECORD:
                if (value instanceof Map<?, ?> map) {
                    return record(schema, map, path);
                }
                throw mismatch(path, "a map of the fields of record " + schema.getName(), value);
            case UNION:
                {
                    if (value == null) {
                        for (Schema branch : schema.getTypes()) {
                            if (branch.getType() == Schema.Type.NULL) {
                                return null;
                            }
                        }
                    }
                    List<String> tried = new ArrayList<>();
                    for (Schema branch : schema.getTypes()) {
                        if (branch.getType() == Schema.Type.NULL) {
                            continue;
                        }
                        try {
                            return toAvro(branch, value, path);
                        } catch (Mismatch ignored) {
                            tried.add(describe(branch));
                        }
                    }
                    throw mismatch(
                            path,
                            "one of "
                                    + String.join(", ", tried)
                                    + (tried.size() < schema.getTypes().size() ? " or null" : ""),
                            value);
                }
            default:
                throw new Mismatch(path + ": unsupported Avro type " + schema.getType());
        }
    }

    private static GenericRecord record(Schema schema, Map<?, ?> map, String path) throws Mismatch {
        for (Object key : map.keySet()) {
            if (!(key instanceof CharSequence) || schema.getField(key.toString()) == null) {
                throw new Mismatch(
                        path + ": unknown field " + quote(key) + " of record " + schema.getName());
            }
        }
        GenericData.Record out = new GenericData.Record(schema);
        for (Schema.Field field : schema.getFields()) {
            String fieldPath = path + "." + field.name();
            if (map.containsKey(field.name())) {
                out.put(field.pos(), toAvro(field.schema(), map.get(field.name()), fieldPath));
            } else if (field.hasDefaultValue()) {
                out.put(
                        field.pos(),
                        GenericData.get()
                                .deepCopy(
                                        field.schema(), GenericData.get().getDefaultValue(field)));
            } else {
                throw new Mismatch(
                        fieldPath
                                + ": missing (record "
                                + schema.getName()
                                + " has no default for it)");
            }
        }
        return out;
    }

    /** The plain Java value of a datum read with {@code schema}. */
    static Object fromAvro(Schema schema, Object datum) {
        if (datum == null) {
            return null;
        }
        String logical = schema.getProp("logicalType");
        switch (schema.getType()) {
            case UNION:
                return fromAvro(
                        schema.getTypes().get(GenericData.get().resolveUnion(schema, datum)),
                        datum);
            case STRING:
                return DECIMAL.equals(logical)
                        ? new BigDecimal(datum.toString())
                        : datum.toString();
            case INT:
                return "date".equals(logical) ? LocalDate.ofEpochDay((Integer) datum) : datum;
            case LONG:
                if ("timestamp-micros".equals(logical)) {
                    return Instant.EPOCH.plus((Long) datum, ChronoUnit.MICROS);
                }
                return "timestamp-millis".equals(logical)
                        ? Instant.ofEpochMilli((Long) datum)
                        : datum;
            case BYTES:
                {
                    ByteBuffer buffer = ((ByteBuffer) datum).duplicate();
                    byte[] out = new byte[buffer.remaining()];
                    buffer.get(out);
                    return out;
                }
            case FIXED:
                return ((GenericFixed) datum).bytes().clone();
            case ENUM:
                return ((GenericEnumSymbol<?>) datum).toString();
            case ARRAY:
                {
                    List<Object> out = new ArrayList<>();
                    for (Object item : (Collection<?>) datum) {
                        out.add(fromAvro(schema.getElementType(), item));
                    }
                    return out;
                }
            case MAP:
                {
                    Map<String, Object> out = new LinkedHashMap<>();
                    for (Map.Entry<?, ?> e : ((Map<?, ?>) datum).entrySet()) {
                        out.put(
                                e.getKey().toString(),
                                fromAvro(schema.getValueType(), e.getValue()));
                    }
                    return out;
                }
            case RECORD:
                {
                    GenericRecord record = (GenericRecord) datum;
                    Map<String, Object> out = new LinkedHashMap<>();
                    for (Schema.Field field : schema.getFields()) {
                        out.put(field.name(), fromAvro(field.schema(), record.get(field.pos())));
                    }
                    return out;
                }
            default:
                return datum;
        }
    }

    private static Long integral(Object value) {
        if (value instanceof Long
                || value instanceof Integer
                || value instanceof Short
                || value instanceof Byte) {
            return ((Number) value).longValue();
        }
        if (value instanceof BigInteger big && big.bitLength() < 64) {
            return big.longValue();
        }
        return null;
    }

    private static List<?> asList(Object value) {
        if (value instanceof List<?> list) {
            return list;
        }
        if (value instanceof Collection<?> collection) {
            return new ArrayList<>(collection);
        }
        if (value instanceof Object[] array) {
            return Arrays.asList(array);
        }
        if (value instanceof double[] array) {
            return Arrays.stream(array).boxed().toList();
        }
        if (value instanceof long[] array) {
            return Arrays.stream(array).boxed().toList();
        }
        if (value instanceof int[] array) {
            return Arrays.stream(array).boxed().toList();
        }
        return null;
    }

    static String describe(Schema schema) {
        return switch (schema.getType()) {
            case RECORD, ENUM, FIXED -> schema.getName();
            case ARRAY -> "array of " + describe(schema.getElementType());
            case MAP -> "map of " + describe(schema.getValueType());
            default -> schema.getType().getName();
        };
    }

    private static Mismatch mismatch(String path, String expected, Object value) {
        return new Mismatch(path + ": expected " + expected + ", got " + show(value));
    }

    /**
     * A short description of {@code value} for error messages: its type and, if small, its text.
     */
    static String show(Object value) {
        if (value == null) {
            return "null";
        }
        String text = value instanceof CharSequence ? quote(value) : String.valueOf(value);
        if (text.length() > 40) {
            text = text.substring(0, 37) + "...";
        }
        return value.getClass().getSimpleName() + " " + text;
    }

    private static String quote(Object key) {
        return "\"" + key + "\"";
    }
}
