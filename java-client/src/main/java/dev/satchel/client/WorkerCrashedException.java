package dev.satchel.client;

/** The worker process running the call died; the server starts a new one for the next call. */
public class WorkerCrashedException extends SatchelException {
    private static final long serialVersionUID = 1L;

    public WorkerCrashedException(String function, String message, Throwable cause) {
        super(WORKER_CRASHED, function, message, cause);
    }
}
