package dev.satchel.wire;

import java.nio.charset.StandardCharsets;

/**
 * CRC-64-AVRO, the Avro specification's 64-bit Rabin fingerprint of a schema's Parsing Canonical
 * Form ("Schema Fingerprints"). Values are signed Java longs, as Avro carries them; the bundle
 * document and the test vectors write them as 16 hex digits of the unsigned value ({@link #toHex}).
 */
public final class Fingerprint {
    /** The fingerprint of the empty input, and the polynomial's reflected form. */
    public static final long EMPTY = 0xc15d213aa4d7a795L;

    private static final long[] TABLE = new long[256];

    static {
        for (int i = 0; i < 256; i++) {
            long fp = i;
            for (int j = 0; j < 8; j++) {
                fp = (fp >>> 1) ^ (EMPTY & -(fp & 1L));
            }
            TABLE[i] = fp;
        }
    }

    private Fingerprint() {}

    /** CRC-64-AVRO of the UTF-8 bytes of {@code parsingCanonicalForm}. */
    public static long crc64Avro(String parsingCanonicalForm) {
        return crc64Avro(parsingCanonicalForm.getBytes(StandardCharsets.UTF_8));
    }

    /** CRC-64-AVRO of {@code data}. */
    public static long crc64Avro(byte[] data) {
        long fp = EMPTY;
        for (byte b : data) {
            fp = (fp >>> 8) ^ TABLE[(int) (fp ^ b) & 0xff];
        }
        return fp;
    }

    /** {@code fingerprint} as 16 lowercase hex digits of its unsigned value. */
    public static String toHex(long fingerprint) {
        return String.format("%016x", fingerprint);
    }

    /** The inverse of {@link #toHex}: 16 hex digits (an unsigned 64-bit value) as a signed long. */
    public static long fromHex(String hex) {
        if (hex.length() != 16) {
            throw new IllegalArgumentException("a fingerprint is 16 hex digits, got \"" + hex + "\"");
        }
        return Long.parseUnsignedLong(hex, 16);
    }
}
