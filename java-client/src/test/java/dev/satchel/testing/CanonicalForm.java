package dev.satchel.testing;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The Avro Parsing Canonical Form of a schema given as parsed JSON ({@link Json}), after the Avro
 * specification (PRIMITIVES, FULLNAMES, STRIP, ORDER, STRINGS, WHITESPACE) and
 * bindings/fingerprint.py. Test scope: it turns the vectors' schemas into the input of
 * {@code Fingerprint.crc64Avro}.
 */
public final class CanonicalForm {
    private static final Set<String> PRIMITIVES =
            Set.of("null", "boolean", "int", "long", "float", "double", "bytes", "string");

    private CanonicalForm() {}

    public static String of(Object schema) {
        StringBuilder out = new StringBuilder();
        write(schema, "", new HashSet<>(), out);
        return out.toString();
    }

    private static void write(Object schema, String namespace, Set<String> seen, StringBuilder out) {
        if (schema instanceof String name) {
            quote(PRIMITIVES.contains(name) ? name : fullName(name, namespace), out);
        } else if (schema instanceof List<?> union) {
            out.append('[');
            for (int i = 0; i < union.size(); i++) {
                if (i > 0) {
                    out.append(',');
                }
                write(union.get(i), namespace, seen, out);
            }
            out.append(']');
        } else if (schema instanceof Map<?, ?> map) {
            Object type = map.get("type");
            if (type instanceof Map || type instanceof List) {
                write(type, namespace, seen, out);
                return;
            }
            String kind = (String) type;
            switch (kind) {
                case "record", "error", "enum", "fixed" -> {
                    String name = (String) map.get("name");
                    String ns = map.containsKey("namespace") ? (String) map.get("namespace") : namespace;
                    String full = fullName(name, ns);
                    if (!seen.add(full)) {
                        quote(full, out);
                        return;
                    }
                    out.append("{\"name\":");
                    quote(full, out);
                    out.append(",\"type\":");
                    quote(kind, out);
                    if (kind.equals("record") || kind.equals("error")) {
                        int dot = full.lastIndexOf('.');
                        String inner = dot < 0 ? "" : full.substring(0, dot);
                        out.append(",\"fields\":[");
                        List<?> fields = (List<?>) map.get("fields");
                        for (int i = 0; i < fields.size(); i++) {
                            Map<?, ?> field = (Map<?, ?>) fields.get(i);
                            if (i > 0) {
                                out.append(',');
                            }
                            out.append("{\"name\":");
                            quote((String) field.get("name"), out);
                            out.append(",\"type\":");
                            write(field.get("type"), inner, seen, out);
                            out.append('}');
                        }
                        out.append(']');
                    } else if (kind.equals("enum")) {
                        out.append(",\"symbols\":[");
                        List<?> symbols = (List<?>) map.get("symbols");
                        for (int i = 0; i < symbols.size(); i++) {
                            if (i > 0) {
                                out.append(',');
                            }
                            quote((String) symbols.get(i), out);
                        }
                        out.append(']');
                    } else {
                        out.append(",\"size\":").append(Vectors.num(map.get("size")));
                    }
                    out.append('}');
                }
                case "array" -> {
                    out.append("{\"type\":\"array\",\"items\":");
                    write(map.get("items"), namespace, seen, out);
                    out.append('}');
                }
                case "map" -> {
                    out.append("{\"type\":\"map\",\"values\":");
                    write(map.get("values"), namespace, seen, out);
                    out.append('}');
                }
                default -> write(kind, namespace, seen, out); // a primitive, or a reference
            }
        } else {
            throw new IllegalArgumentException("not an Avro schema: " + schema);
        }
    }

    private static String fullName(String name, String namespace) {
        return name.contains(".") || namespace == null || namespace.isEmpty() ? name : namespace + "." + name;
    }

    private static void quote(String text, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c == '\n') {
                out.append("\\n");
            } else if (c == '\r') {
                out.append("\\r");
            } else if (c == '\t') {
                out.append("\\t");
            } else if (c == '\b') {
                out.append("\\b");
            } else if (c == '\f') {
                out.append("\\f");
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        out.append('"');
    }
}
