package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.Map;

/** SatchelRestClient against a real `satchel serve` (Avro bodies with X-Satchel-Fingerprint). */
class SatchelRestClientTest {
    private static final String TOKEN = "rest-secret";

    private static SatchelServer server;
    private static SatchelRestClient client;

    @BeforeAll
    static void start() throws Exception {
        server = SatchelServer.start(TOKEN, "add", "describe", "fail", "nap");
        client =
                new SatchelRestClient(server.restUri(), TOKEN)
                        .register(Functions.ADD)
                        .register(Functions.DESCRIBE)
                        .register(Functions.FAIL)
                        .register(Functions.NAP);
    }

    @AfterAll
    static void stop() throws Exception {
        if (server != null) {
            server.close();
        }
    }

    @Test
    void invokesWithAvroBodies() {
        assertEquals(3.5, client.invoke("add", Map.of("a", 1.5, "b", 2)));
        assertEquals("1.2 million", client.invoke("describe", Map.of("n", 1_200_000)));
        assertEquals(
                "1.2 million!",
                client.invoke(Functions.DESCRIBE, Map.of("n", 1_200_000L, "suffix", "!")));
    }

    @Test
    void withoutTheTokenTheServerRefuses() {
        SatchelRestClient anonymous = new SatchelRestClient(server.restUri());
        SatchelException e =
                assertThrows(
                        SatchelException.class,
                        () -> anonymous.invoke(Functions.ADD, Map.of("a", 1.0, "b", 2.0)));
        assertEquals(SatchelException.UNAUTHORIZED, e.kind());
        assertTrue(e.getMessage().contains("Bearer"), e.getMessage());
    }

    @Test
    void refusesABadArgumentNamingTheParameter() {
        InvalidArgumentException e =
                assertThrows(
                        InvalidArgumentException.class,
                        () -> client.invoke("add", Map.of("a", 1.0, "b", "two")));
        assertEquals("b", e.parameter());
        assertTrue(e.getMessage().contains("'b'"), e.getMessage());
    }

    @Test
    void unknownFunction() {
        FunctionDescription missing =
                FunctionDescription.of("nosuch", Functions.ADD.requestSchema(), "\"double\"");
        UnknownFunctionException e =
                assertThrows(
                        UnknownFunctionException.class,
                        () -> client.invoke(missing, Map.of("a", 1.0, "b", 2.0)));
        assertEquals(SatchelException.UNKNOWN_FUNCTION, e.kind());
        assertTrue(e.getMessage().contains("nosuch"), e.getMessage());
    }

    @Test
    void staleSchemaIsRefusedByTheServer() {
        FunctionDescription stale =
                FunctionDescription.of(
                        "add",
                        "{\"type\": \"record\", \"name\": \"add_request\", \"fields\": [{\"name\":"
                            + " \"a\", \"type\": \"float\"}, {\"name\": \"b\", \"type\":"
                            + " \"double\"}]}",
                        "\"double\"");
        SatchelException e =
                assertThrows(
                        SatchelException.class,
                        () -> client.invoke(stale, Map.of("a", 1.0, "b", 2.0)));
        assertEquals(SatchelException.FINGERPRINT_MISMATCH, e.kind());
        assertTrue(e.getMessage().contains(Functions.ADD.requestFingerprint()), e.getMessage());
    }

    @Test
    void functionRaisingIsARemoteErrorWithItsType() {
        RemoteErrorException e =
                assertThrows(
                        RemoteErrorException.class,
                        () -> client.invoke("fail", Map.of("message", "no luck")));
        assertEquals("ValueError", e.remoteType());
        assertTrue(e.getMessage().contains("no luck"), e.getMessage());
    }

    @Test
    void deadlinePassedIsACallTimeout() {
        CallTimeoutException e =
                assertThrows(
                        CallTimeoutException.class,
                        () ->
                                client.invoke(
                                        "nap", Map.of("seconds", 30.0), Duration.ofMillis(300)));
        assertEquals(SatchelException.TIMEOUT, e.kind());
        assertEquals("nap", e.function());
        assertTrue(
                e.getMessage().contains("0.3s"),
                e.getMessage()); // the server's 504, not a client timeout
    }
}
