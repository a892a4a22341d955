package dev.satchel.client;

/** The Avro schemas of tests/functions/textutil.py functions, as their bundles declare them. */
final class Functions {
    static final FunctionDescription ADD =
            FunctionDescription.of(
                    "add",
                    "{\"type\": \"record\", \"name\": \"add_request\", \"fields\": [{\"name\":"
                        + " \"a\", \"type\": \"double\"}, {\"name\": \"b\", \"type\":"
                        + " \"double\"}]}",
                    "\"double\"");
    static final FunctionDescription DESCRIBE =
            FunctionDescription.of(
                    "describe",
                    "{\"type\": \"record\", \"name\": \"describe_request\", \"fields\": [{\"name\":"
                        + " \"n\", \"type\": \"long\"}, {\"name\": \"suffix\", \"type\":"
                        + " \"string\", \"default\": \"\"}]}",
                    "\"string\"");
    static final FunctionDescription FAIL =
            FunctionDescription.of(
                    "fail",
                    "{\"type\": \"record\", \"name\": \"fail_request\", \"fields\": [{\"name\":"
                        + " \"message\", \"type\": \"string\"}]}",
                    "\"string\"");
    static final FunctionDescription NAP =
            FunctionDescription.of(
                    "nap",
                    "{\"type\": \"record\", \"name\": \"nap_request\", \"fields\": [{\"name\":"
                        + " \"seconds\", \"type\": \"double\"}]}",
                    "\"double\"");

    private Functions() {}
}
