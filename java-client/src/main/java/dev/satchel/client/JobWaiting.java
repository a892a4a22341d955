package dev.satchel.client;

import java.time.Duration;
import java.util.Objects;
import java.util.function.Function;

/** Waiting for a job by polling its state with backoff: the same for both clients. */
final class JobWaiting {
    /** The first pause between two polls; each next one is twice as long, up to {@link #MAX}. */
    static final Duration FIRST = Duration.ofMillis(10);

    static final Duration MAX = Duration.ofMillis(500);

    private JobWaiting() {}

    /**
     * Poll {@code getJob} for the job {@code id} until it is done and return it.
     *
     * @throws CallTimeoutException naming the job and its function if it is still running after
     *     {@code timeout} (the job keeps running: cancel it, or wait again)
     * @throws IllegalArgumentException if {@code timeout} is negative
     */
    static Job await(String id, Duration timeout, Function<String, Job> getJob) {
        Objects.requireNonNull(timeout, "timeout");
        if (timeout.isNegative()) {
            throw new IllegalArgumentException("timeout must not be negative, got " + timeout);
        }
        long end = System.nanoTime() + timeout.toNanos();
        long pauseNanos = FIRST.toNanos();
        while (true) {
            Job job = getJob.apply(id);
            if (job.isDone()) {
                return job;
            }
            long left = end - System.nanoTime();
            if (left <= 0) {
                throw new CallTimeoutException(
                        job.function(),
                        "job "
                                + id
                                + " of "
                                + job.function()
                                + " is still "
                                + job.state()
                                + " after "
                                + timeout,
                        null);
            }
            try {
                Thread.sleep(Duration.ofNanos(Math.min(pauseNanos, left)).toMillis() + 1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new SatchelException(
                        "cancelled", job.function(), "interrupted while waiting for job " + id, e);
            }
            pauseNanos = Math.min(pauseNanos * 2, MAX.toNanos());
        }
    }
}
