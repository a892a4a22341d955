package dev.satchel.client;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A real Satchel server for the integration tests: functions of the repository's tests/functions/
 * (textutil.py, or MODULE.NAME for another module) exported to a fresh store, then {@code python -m
 * satchel serve REF... --port P --grpc-port G} on free loopback ports. The interpreter is
 * $SATCHEL_PYTHON, else the repository's .venv/bin/python. Environments are cached in $SATCHEL_HOME
 * (default: the pytest suite's shared test home).
 */
final class SatchelServer implements AutoCloseable {
    static final String HOST = "127.0.0.1";
    private static final Duration START_TIMEOUT = Duration.ofSeconds(120);
    private static final Duration STOP_TIMEOUT = Duration.ofSeconds(5);
    private static final String EXPORT =
            String.join(
                    "\n",
                    "import importlib, sys",
                    "for spec in sys.argv[2:]:",
                    "    module, _, name = spec.rpartition('.')",
                    "    fn = getattr(importlib.import_module('tests.functions.' + (module or"
                            + " 'textutil')), name)",
                    "    print(fn.export(name=name, store=sys.argv[1]), flush=True)");

    final int restPort;
    final int grpcPort;
    private final Process process;
    private final Path dir;
    private final Path log;

    private SatchelServer(Process process, Path dir, Path log, int restPort, int grpcPort) {
        this.process = process;
        this.dir = dir;
        this.log = log;
        this.restPort = restPort;
        this.grpcPort = grpcPort;
    }

    /**
     * Export {@code functions} (names in textutil.py, or {@code MODULE.NAME} of another module of
     * tests/functions/) and serve them, requiring {@code token} (unless null) on every call;
     * returns once /healthz answers.
     */
    static SatchelServer start(String token, String... functions)
            throws IOException, InterruptedException {
        Path repo = Path.of(System.getProperty("satchel.repo", "..")).toAbsolutePath().normalize();
        String python = python(repo);
        Path dir = Files.createTempDirectory("satchel-java-client-");
        List<String> refs = export(python, repo, dir, functions);
        int restPort = freePort();
        int grpcPort = freePort();
        List<String> command = new ArrayList<>(List.of(python, "-m", "satchel", "serve"));
        command.addAll(refs);
        command.addAll(
                List.of(
                        "--host",
                        HOST,
                        "--port",
                        String.valueOf(restPort),
                        "--grpc-port",
                        String.valueOf(grpcPort),
                        "--workers",
                        "1:2",
                        "--drain-timeout",
                        "1"));
        if (token != null) {
            Path tokenFile = dir.resolve("token");
            Files.writeString(tokenFile, token);
            command.addAll(List.of("--token-file", tokenFile.toString()));
        }
        Path log = dir.resolve("serve.log");
        ProcessBuilder builder =
                new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
        environment(builder, repo);
        SatchelServer server = new SatchelServer(builder.start(), dir, log, restPort, grpcPort);
        try {
            server.awaitHealthy();
        } catch (RuntimeException | Error e) {
            server.close();
            throw e;
        }
        return server;
    }

    URI restUri() {
        return URI.create("http://" + HOST + ":" + restPort);
    }

    /** The server's output so far (for failure messages). */
    String log() {
        try {
            return Files.readString(log, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    private void awaitHealthy() throws InterruptedException {
        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        HttpRequest healthz =
                HttpRequest.newBuilder(restUri().resolve("/healthz"))
                        .timeout(Duration.ofSeconds(5))
                        .build();
        long end = System.nanoTime() + START_TIMEOUT.toNanos();
        while (System.nanoTime() - end < 0) {
            if (!process.isAlive()) {
                throw new IllegalStateException(
                        "satchel serve exited with status " + process.exitValue() + ":\n" + log());
            }
            try {
                if (http.send(healthz, HttpResponse.BodyHandlers.discarding()).statusCode()
                        == 200) {
                    return;
                }
            } catch (IOException notYet) {
                // not listening yet
            }
            Thread.sleep(100); // polling a condition, bounded by START_TIMEOUT
        }
        throw new IllegalStateException(
                "satchel serve did not answer /healthz within " + START_TIMEOUT + ":\n" + log());
    }

    /** Stop the server and every process it started (workers), then remove the store. */
    @Override
    public void close() {
        List<ProcessHandle> tree = new ArrayList<>(process.descendants().toList());
        process.destroy(); // SIGTERM: drains, closes the worker pools
        try {
            if (!process.waitFor(STOP_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
                System.err.println(
                        "satchel serve did not stop within "
                                + STOP_TIMEOUT
                                + " of SIGTERM: killed");
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        for (ProcessHandle child : tree) {
            child.destroyForcibly();
        }
        for (ProcessHandle child : tree) {
            child.onExit().completeOnTimeout(child, 10, TimeUnit.SECONDS).join();
        }
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException | UncheckedIOException ignored) {
            // a temp dir left behind is harmless
        }
    }

    private static List<String> export(String python, Path repo, Path dir, String... functions)
            throws IOException, InterruptedException {
        List<String> command =
                new ArrayList<>(
                        List.of(python, "-c", EXPORT, dir.resolve("store").toUri().toString()));
        command.addAll(List.of(functions));
        Path out = dir.resolve("export.log");
        ProcessBuilder builder =
                new ProcessBuilder(command)
                        .redirectOutput(out.toFile())
                        .redirectError(dir.resolve("export.err").toFile());
        environment(builder, repo);
        Process process = builder.start();
        if (!process.waitFor(START_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new IllegalStateException(
                    "exporting " + String.join(", ", functions) + " took over " + START_TIMEOUT);
        }
        if (process.exitValue() != 0) {
            throw new IllegalStateException(
                    "exporting "
                            + String.join(", ", functions)
                            + " failed (status "
                            + process.exitValue()
                            + "):\n"
                            + Files.readString(dir.resolve("export.err")));
        }
        List<String> refs =
                Files.readAllLines(out).stream().filter(line -> line.contains("#")).toList();
        if (refs.size() != functions.length) {
            throw new IllegalStateException(
                    "expected " + functions.length + " references from the export, got: " + refs);
        }
        return refs;
    }

    private static void environment(ProcessBuilder builder, Path repo) throws IOException {
        Map<String, String> env = builder.environment();
        String path = env.get("PYTHONPATH");
        env.put(
                "PYTHONPATH",
                path == null || path.isEmpty()
                        ? repo.toString()
                        : repo + java.io.File.pathSeparator + path);
        env.putIfAbsent("SATCHEL_HOME", satchelHome().toString());
        builder.directory(repo.toFile());
    }

    /**
     * $SATCHEL_HOME, else the pytest suite's shared home (tests/conftest.py): environments built
     * once.
     */
    private static Path satchelHome() throws IOException {
        String shared = System.getenv("SATCHEL_TEST_HOME");
        if (shared != null && !shared.isEmpty()) {
            return Path.of(shared);
        }
        String tmp = System.getenv().getOrDefault("TMPDIR", "/tmp");
        Object uid = Files.getAttribute(Path.of("/proc/self"), "unix:uid");
        return Path.of(tmp.isEmpty() ? "/tmp" : tmp, "satchel-test-home-" + uid);
    }

    /**
     * $SATCHEL_PYTHON, else the repository's .venv/bin/python (the system property satchel.python).
     */
    private static String python(Path repo) {
        String given = System.getenv("SATCHEL_PYTHON");
        if (given != null && !given.isEmpty()) {
            if (!Files.isExecutable(Path.of(given))) {
                throw new IllegalStateException(
                        "SATCHEL_PYTHON=" + given + " is not an executable file");
            }
            return given;
        }
        Path venv =
                Path.of(
                        System.getProperty(
                                "satchel.python", repo.resolve(".venv/bin/python").toString()));
        if (Files.isExecutable(venv)) {
            return venv.toString();
        }
        throw new IllegalStateException(
                "the integration tests start a real Satchel server and need a Python with satchel"
                    + " installed: set SATCHEL_PYTHON (for example to the repository's"
                    + " .venv/bin/python after scripts/setup.sh); "
                        + venv
                        + " does not exist");
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, java.net.InetAddress.getByName(HOST))) {
            return socket.getLocalPort();
        }
    }
}
