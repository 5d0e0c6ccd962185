// The example service, correct: the naive one (Naive.java) plus a SIGTERM sequence, in a
// shutdown hook (the JVM runs its hooks on SIGTERM).
//
// On SIGTERM: /readyz answers 503 at once and every answer says `Connection: close`, while
// everything is still served for DRAIN_DELAY (default 5s: the routers learn of the pod's removal
// late); then the exchanges in flight are waited for (at most SHUTDOWN_TIMEOUT, default 20s), the
// server stops (listener and idle connections closed) and the JVM exits 0 (its default after
// SIGTERM is 143). Run: java Correct.java

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

public class Correct {
    static final String VERSION = System.getenv().getOrDefault("APP_VERSION", "v1");
    static final String HOST = System.getenv().getOrDefault("HOSTNAME", "localhost");
    static volatile boolean draining = false;
    static final AtomicInteger inFlight = new AtomicInteger();

    public static void main(String[] args) throws IOException {
        String bind = System.getenv().getOrDefault("BIND", "0.0.0.0");
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
        long drainMs = millis(System.getenv().getOrDefault("DRAIN_DELAY", "5s"));
        long shutdownMs = millis(System.getenv().getOrDefault("SHUTDOWN_TIMEOUT", "20s"));
        HttpServer server = HttpServer.create(new InetSocketAddress(bind, port), 0);
        server.createContext("/", Correct::handle);
        server.setExecutor(Executors.newCachedThreadPool());
        server.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            draining = true;
            sleep(drainMs);
            // HttpServer.stop(delay) waits the whole delay on JDK 17 (JDK-8304065), and stop(0)
            // would cut exchanges in flight: wait for them first.
            long deadline = System.currentTimeMillis() + shutdownMs;
            while (inFlight.get() > 0 && System.currentTimeMillis() < deadline) {
                sleep(10);
            }
            boolean clean = inFlight.get() == 0;
            server.stop(0);
            // The JVM would exit 143 after SIGTERM: a clean drain is a success.
            Runtime.getRuntime().halt(clean ? 0 : 1);
        }));
    }

    static void handle(HttpExchange exchange) throws IOException {
        inFlight.incrementAndGet();
        try {
            String path = exchange.getRequestURI().getPath();
            String query = exchange.getRequestURI().getQuery();
            switch (path) {
                case "/" -> answer(exchange, 200, "{\"version\": \"" + VERSION + "\", \"host\": \"" + HOST + "\"}");
                case "/work" -> {
                    long ms = query != null && query.startsWith("ms=") ? Long.parseLong(query.substring(3)) : 0;
                    sleep(ms);
                    answer(exchange, 200, "{\"version\": \"" + VERSION + "\", \"worked_ms\": " + ms + "}");
                }
                case "/healthz" -> answer(exchange, 200, "\"ok\"");
                case "/readyz" -> answer(exchange, draining ? 503 : 200, draining ? "\"draining\"" : "\"ready\"");
                default -> answer(exchange, 404, "{\"error\": \"not found\"}");
            }
        } finally {
            inFlight.decrementAndGet();
        }
    }

    static void answer(HttpExchange exchange, int status, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        if (draining) {
            // The client opens its next connection elsewhere, to a pod that is not leaving.
            exchange.getResponseHeaders().set("Connection", "close");
        }
        exchange.sendResponseHeaders(status, bytes.length);
        exchange.getResponseBody().write(bytes);
        exchange.close();
    }

    static long millis(String text) {
        return text.endsWith("ms") ? Long.parseLong(text.substring(0, text.length() - 2))
                : (long) (Double.parseDouble(text.replace("s", "")) * 1000);
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
