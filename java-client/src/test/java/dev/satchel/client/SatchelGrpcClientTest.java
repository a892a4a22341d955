package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/** SatchelGrpcClient against a real `satchel serve --grpc-port` (satchel.v1.Functions). */
class SatchelGrpcClientTest {
    private static final Duration JOB_TIMEOUT = Duration.ofSeconds(30);

    private static final String TOKEN = "grpc-secret";

    private static SatchelServer server;
    private static SatchelGrpcClient client;

    @BeforeAll
    static void start() throws Exception {
        server = SatchelServer.start(TOKEN, "add", "describe", "fail", "nap", "crash");
        client = new SatchelGrpcClient(SatchelServer.HOST, server.grpcPort, TOKEN);
    }

    @AfterAll
    static void stop() throws Exception {
        if (client != null) {
            client.close();
        }
        if (server != null) {
            server.close();
        }
    }

    @Test
    void listsAndDescribesWithTheFingerprintsJavaComputes() {
        List<String> names = client.list().stream().map(FunctionDescription::name).toList();
        assertEquals(List.of("add", "crash", "describe", "fail", "nap"), names);
        FunctionDescription add = client.describe("add");
        assertEquals("Add two numbers.", add.doc());
        assertTrue(add.bundle().contains("#add:1"), add.bundle());
        // the server's fingerprints (Python) are the ones AvroCodec computes from the schemas
        // (Java)
        assertEquals(Functions.ADD.requestFingerprint(), add.requestFingerprint());
        assertEquals(Functions.ADD.responseFingerprint(), add.responseFingerprint());
        assertEquals(
                Functions.DESCRIBE.requestFingerprint(),
                client.describe("describe").requestFingerprint());
    }

    @Test
    void invokes() {
        assertEquals(3.5, client.invoke("add", Map.of("a", 1.5, "b", 2)));
        assertEquals("1.2 million", client.invoke("describe", Map.of("n", 1_200_000)));
        assertEquals(
                "3.5 billion!",
                client.invoke(
                        "describe",
                        Map.of("n", 3_500_000_000L, "suffix", "!"),
                        Duration.ofSeconds(30)));
    }

    @Test
    void restClientSharesTheCodecOfADescription() {
        SatchelRestClient rest =
                new SatchelRestClient(server.restUri(), TOKEN).register(client.describe("add"));
        assertEquals(-1.0, rest.invoke("add", Map.of("a", 1, "b", -2)));
    }

    @Test
    void refusesABadArgumentBeforeSendingIt() {
        InvalidArgumentException e =
                assertThrows(
                        InvalidArgumentException.class,
                        () -> client.invoke("add", Map.of("a", 1.0, "b", "two")));
        assertEquals("b", e.parameter());
        InvalidArgumentException missing =
                assertThrows(
                        InvalidArgumentException.class,
                        () -> client.invoke("add", Map.of("a", 1.0)));
        assertEquals("b", missing.parameter());
    }

    @Test
    void serverNamesTheParameterOfAPayloadThatDoesNotDecode() {
        AvroCodec codec = client.codec("add");
        byte[] whole = codec.encodeRequest(Map.of("a", 1.0, "b", 2.0));
        byte[] onlyA = Arrays.copyOf(whole, 8); // the double of `a`, and nothing of `b`
        InvalidArgumentException e =
                assertThrows(
                        InvalidArgumentException.class,
                        () -> client.invokeRaw("add", onlyA, codec.requestFingerprint()));
        assertEquals(SatchelException.INVALID_ARGUMENT, e.kind());
        assertEquals("b", e.parameter());
        assertTrue(e.getMessage().contains("'b'"), e.getMessage());
        byte[] three = {0, 0, 0, 0, 0, 0, 8, 64}; // 3.0 as an Avro double (little-endian IEEE 754)
        assertArrayEquals(three, client.invokeRaw("add", whole, codec.requestFingerprint()));
    }

    @Test
    void staleFingerprintIsRefused() {
        byte[] payload = client.codec("add").encodeRequest(Map.of("a", 1.0, "b", 2.0));
        SatchelException e =
                assertThrows(
                        SatchelException.class,
                        () -> client.invokeRaw("add", payload, "0000000000000000"));
        assertEquals(SatchelException.FINGERPRINT_MISMATCH, e.kind());
    }

    @Test
    void unknownFunction() {
        UnknownFunctionException e =
                assertThrows(
                        UnknownFunctionException.class, () -> client.invoke("nosuch", Map.of()));
        assertEquals("nosuch", e.function());
        assertTrue(e.getMessage().contains("nosuch"), e.getMessage());
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
    void withoutTheTokenTheServerRefuses() {
        try (SatchelGrpcClient anonymous =
                new SatchelGrpcClient(SatchelServer.HOST, server.grpcPort)) {
            SatchelException e =
                    assertThrows(SatchelException.class, () -> anonymous.describe("add"));
            assertEquals(SatchelException.UNAUTHORIZED, e.kind());
        }
    }

    @Test
    void workerDyingIsAWorkerCrash() {
        WorkerCrashedException e =
                assertThrows(
                        WorkerCrashedException.class,
                        () -> client.invoke("crash", Map.of("how", "exit")));
        assertEquals("crash", e.function());
        assertTrue(e.getMessage().contains("7"), e.getMessage()); // its exit status
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
    }

    @Test
    void submittedJobRunsToItsResult() {
        Job submitted = client.submit("add", Map.of("a", 2.0, "b", 0.25));
        assertEquals("add", submitted.function());
        assertNotNull(submitted.createdAt());
        Job done = client.awaitJob(submitted.id(), JOB_TIMEOUT);
        assertEquals(Job.State.SUCCEEDED, done.state());
        assertEquals(2.25, done.result());
        assertNull(done.error());
        assertNotNull(done.finishedAt());
        assertEquals(done, client.getJob(submitted.id()));
    }

    @Test
    void failedJobCarriesTheError() {
        Job done =
                client.awaitJob(
                        client.submit("fail", Map.of("message", "job failed")).id(), JOB_TIMEOUT);
        assertEquals(Job.State.FAILED, done.state());
        RemoteErrorException error = assertInstanceOf(RemoteErrorException.class, done.error());
        assertEquals("ValueError", error.remoteType());
        assertTrue(error.getMessage().contains("job failed"), error.getMessage());
    }

    @Test
    void cancelledJob() {
        Job submitted = client.submit("nap", Map.of("seconds", 30.0));
        Job cancelled = client.cancel(submitted.id());
        assertEquals(Job.State.CANCELLED, cancelled.state());
        assertEquals(Job.State.CANCELLED, client.getJob(submitted.id()).state());
    }

    @Test
    void unknownJob() {
        UnknownJobException e =
                assertThrows(UnknownJobException.class, () -> client.getJob("no-such-job"));
        assertTrue(e.getMessage().contains("no-such-job"), e.getMessage());
    }
}
