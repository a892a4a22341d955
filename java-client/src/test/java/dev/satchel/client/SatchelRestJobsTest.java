package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;

/** Async jobs of SatchelRestClient against a real `satchel serve` (with a token). */
class SatchelRestJobsTest {
    private static final String TOKEN = "jobs-secret";
    private static final Duration JOB_TIMEOUT = Duration.ofSeconds(60);

    private static SatchelServer server;
    private static SatchelGrpcClient grpc;
    private static SatchelRestClient client;

    @BeforeAll
    static void start() throws Exception {
        server = SatchelServer.start(TOKEN, "add", "fail", "nap", "records.bill");
        grpc = new SatchelGrpcClient(SatchelServer.HOST, server.grpcPort, TOKEN);
        client =
                new SatchelRestClient(server.restUri(), TOKEN)
                        .register(Functions.ADD)
                        .register(Functions.FAIL)
                        .register(Functions.NAP)
                        .register(grpc.describe("bill"));
    }

    @AfterAll
    static void stop() {
        if (grpc != null) {
            grpc.close();
        }
        if (server != null) {
            server.close();
        }
    }

    @Test
    void submittedJobRunsToItsResult() {
        Job submitted = client.submit("add", Map.of("a", 2.0, "b", 0.25));
        assertFalse(submitted.id().isEmpty());
        assertEquals("add", submitted.function());
        assertNotNull(submitted.createdAt());

        Job done = client.awaitJob(submitted.id(), JOB_TIMEOUT);
        assertEquals(Job.State.SUCCEEDED, done.state());
        assertEquals(2.25, done.result());
        assertNull(done.error());
        assertFalse(done.finishedAt().isBefore(done.createdAt()));
        assertEquals(done, client.getJob(submitted.id()));
    }

    @Test
    void resultsHaveTheTypesOfTheGrpcClient() {
        Map<String, Object> customer =
                Map.of(
                        "name",
                        "Ada",
                        "tier",
                        "PRO",
                        "since",
                        LocalDate.of(2021, 3, 4),
                        "balance",
                        new BigDecimal("10.00"),
                        "tags",
                        List.of("vip"));
        Instant when = Instant.parse("2024-05-01T12:30:00.000250Z");
        Job rest =
                client.awaitJob(
                        client.submit(
                                        "bill",
                                        Map.of(
                                                "customer",
                                                customer,
                                                "items",
                                                Map.of("pen", 2),
                                                "when",
                                                when))
                                .id(),
                        JOB_TIMEOUT);
        assertEquals(Job.State.SUCCEEDED, rest.state(), () -> String.valueOf(rest.error()));
        @SuppressWarnings("unchecked")
        Map<String, Object> invoice = (Map<String, Object>) rest.result();
        assertEquals(
                List.of("customer", "total", "issued", "lines"), List.copyOf(invoice.keySet()));
        assertEquals("Ada", invoice.get("customer"));
        assertEquals(new BigDecimal("11.10"), invoice.get("total"));
        assertEquals(when, invoice.get("issued"));
        assertEquals(Map.of("pen", 2L), invoice.get("lines"));
        // the same job through gRPC (jobs are shared), decoded from Avro bytes
        assertEquals(invoice, grpc.getJob(rest.id()).result());
    }

    @Test
    void failedJobCarriesTheErrorOfItsKind() {
        Job done =
                client.awaitJob(
                        client.submit("fail", Map.of("message", "no luck")).id(), JOB_TIMEOUT);
        assertEquals(Job.State.FAILED, done.state());
        assertNull(done.result());
        RemoteErrorException error = assertInstanceOf(RemoteErrorException.class, done.error());
        assertEquals(SatchelException.REMOTE_ERROR, error.kind());
        assertEquals("ValueError", error.remoteType());
        assertEquals("fail", error.function());
        assertTrue(error.getMessage().contains("no luck"), error.getMessage());
        assertTrue(error.getMessage().contains(done.id()), error.getMessage());
    }

    @Test
    void cancelsARunningJob() {
        Job submitted = client.submit("nap", Map.of("seconds", 300.0));
        waitUntil(
                () -> client.getJob(submitted.id()).state() == Job.State.RUNNING,
                "job " + submitted.id() + " to be RUNNING");

        CallTimeoutException notYet =
                assertThrows(
                        CallTimeoutException.class,
                        () -> client.awaitJob(submitted.id(), Duration.ofMillis(50)));
        assertEquals("nap", notYet.function());
        assertTrue(notYet.getMessage().contains(submitted.id()), notYet.getMessage());
        assertTrue(notYet.getMessage().contains("RUNNING"), notYet.getMessage());

        Job cancelled = client.cancel(submitted.id());
        assertEquals(Job.State.CANCELLED, cancelled.state());
        assertNotNull(cancelled.finishedAt());
        assertNull(cancelled.result());
        assertEquals(Job.State.CANCELLED, client.getJob(submitted.id()).state());
        assertEquals(Job.State.CANCELLED, client.awaitJob(submitted.id(), JOB_TIMEOUT).state());
        // cancelling a finished job returns it as it is
        assertEquals(cancelled, client.cancel(submitted.id()));
    }

    @Test
    void unknownJobIsNamed() {
        UnknownJobException get =
                assertThrows(UnknownJobException.class, () -> client.getJob("no-such-job"));
        assertEquals(SatchelException.UNKNOWN_JOB, get.kind());
        assertTrue(get.getMessage().contains("no-such-job"), get.getMessage());
        UnknownJobException cancel =
                assertThrows(UnknownJobException.class, () -> client.cancel("no such job"));
        assertTrue(cancel.getMessage().contains("no such job"), cancel.getMessage());
        IllegalArgumentException empty =
                assertThrows(IllegalArgumentException.class, () -> client.getJob(""));
        assertTrue(empty.getMessage().contains("job id"), empty.getMessage());
    }

    @Test
    void submitRefusesBadArgumentsAndUnknownFunctions() {
        InvalidArgumentException bad =
                assertThrows(
                        InvalidArgumentException.class,
                        () -> client.submit("add", Map.of("a", 1.0, "b", "two")));
        assertEquals("b", bad.parameter());

        FunctionDescription missing =
                FunctionDescription.of("nosuch", Functions.ADD.requestSchema(), "\"double\"");
        UnknownFunctionException unknown =
                assertThrows(
                        UnknownFunctionException.class,
                        () -> client.submit(missing, Map.of("a", 1.0, "b", 2.0)));
        assertTrue(unknown.getMessage().contains("nosuch"), unknown.getMessage());
    }

    @Test
    void jobsNeedTheToken() {
        String id = client.submit("add", Map.of("a", 1.0, "b", 1.0)).id();
        SatchelRestClient anonymous =
                new SatchelRestClient(server.restUri()).register(Functions.ADD);
        SatchelException status = assertThrows(SatchelException.class, () -> anonymous.getJob(id));
        assertEquals(SatchelException.UNAUTHORIZED, status.kind());
        SatchelException submit =
                assertThrows(
                        SatchelException.class,
                        () -> anonymous.submit("add", Map.of("a", 1.0, "b", 1.0)));
        assertEquals(SatchelException.UNAUTHORIZED, submit.kind());
        assertEquals(Job.State.SUCCEEDED, client.awaitJob(id, JOB_TIMEOUT).state());
    }

    @Test
    void resultOfAnUnregisteredFunctionNamesIt() {
        String id =
                client.awaitJob(client.submit("add", Map.of("a", 1.0, "b", 2.0)).id(), JOB_TIMEOUT)
                        .id();
        SatchelRestClient bare = new SatchelRestClient(server.restUri(), TOKEN);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> bare.getJob(id));
        assertTrue(e.getMessage().contains("'add'"), e.getMessage());
        assertTrue(e.getMessage().contains("register"), e.getMessage());
    }

    /** Poll {@code condition} (bounded by JOB_TIMEOUT), as tests/waiting.py's wait_until does. */
    private static void waitUntil(BooleanSupplier condition, String what) {
        long end = System.nanoTime() + JOB_TIMEOUT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - end > 0) {
                throw new AssertionError("timed out after " + JOB_TIMEOUT + " waiting for " + what);
            }
            try {
                Thread.sleep(20); // polling a condition, bounded by JOB_TIMEOUT
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for " + what, e);
            }
        }
    }
}
