package dev.satchel.client;

import java.time.Instant;

/**
 * A long-running call started with {@code submit}: its state, and once finished its result (a plain
 * Java value, see {@link AvroCodec}) or error.
 *
 * @param result the result when {@link State#SUCCEEDED}, else null
 * @param error the failure when {@link State#FAILED}, else null
 * @param finishedAt null until finished
 */
public record Job(
        String id,
        String function,
        State state,
        Object result,
        SatchelException error,
        Instant createdAt,
        Instant finishedAt) {

    /** The states of {@code satchel.v1.Job.State} (and of REST job documents). */
    public enum State {
        QUEUED,
        RUNNING,
        SUCCEEDED,
        FAILED,
        CANCELLED;

        /** True for the final states: SUCCEEDED, FAILED, CANCELLED. */
        public boolean isDone() {
            return this == SUCCEEDED || this == FAILED || this == CANCELLED;
        }
    }

    /** True once the job succeeded, failed or was cancelled. */
    public boolean isDone() {
        return state.isDone();
    }
}
