package dev.satchel.testing;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/** Access to the conformance vectors in bindings/testdata (system property {@code vectors.dir}). */
public final class Vectors {
    private Vectors() {}

    public static Path dir() {
        String dir = System.getProperty("vectors.dir");
        Path path = dir != null ? Path.of(dir) : Path.of("..", "bindings", "testdata");
        assertTrue(Files.isDirectory(path), "conformance vectors not found at " + path.toAbsolutePath()
                + " (set -Dvectors.dir)");
        return path;
    }

    /** The parsed JSON object in {@code bindings/testdata/<name>}. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> load(String name) {
        try {
            return (Map<String, Object>) Json.parse(Files.readString(dir().resolve(name), StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @SuppressWarnings("unchecked")
    public static Map<String, Object> obj(Object value) {
        return (Map<String, Object>) value;
    }

    @SuppressWarnings("unchecked")
    public static List<Object> list(Object value) {
        return (List<Object>) value;
    }

    public static String str(Object value) {
        return (String) value;
    }

    public static long num(Object value) {
        return ((BigDecimal) value).longValueExact();
    }

    public static double dbl(Object value) {
        return ((BigDecimal) value).doubleValue();
    }

    public static byte[] hex(Object value) {
        return HexFormat.of().parseHex((String) value);
    }
}
