// The example service, naive: the JDK's HttpServer with the JVM's defaults.
//
// GET / (the version and host), GET /work?ms=N (answers after N ms), GET /healthz and GET /readyz
// (always 200). Listens on $BIND:$PORT (default 0.0.0.0:8080). Run: java Naive.java
//
// Nothing here handles SIGTERM, so the JVM's default applies: it runs the shutdown hooks (none)
// and exits with code 143 at once, with whatever exchanges were in flight.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;

public class Naive {
    static final String VERSION = System.getenv().getOrDefault("APP_VERSION", "v1");
    static final String HOST = System.getenv().getOrDefault("HOSTNAME", "localhost");

    public static void main(String[] args) throws IOException {
        String bind = System.getenv().getOrDefault("BIND", "0.0.0.0");
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
        HttpServer server = HttpServer.create(new InetSocketAddress(bind, port), 0);
        server.createContext("/", Naive::handle);
        // The default executor runs one exchange at a time: a slow request would hold up the probes.
        server.setExecutor(Executors.newCachedThreadPool());
        server.start();
    }

    static void handle(HttpExchange exchange) throws IOException {
        String path = exchange.getRequestURI().getPath();
        String query = exchange.getRequestURI().getQuery();
        switch (path) {
            case "/" -> answer(exchange, 200, "{\"version\": \"" + VERSION + "\", \"host\": \"" + HOST + "\"}");
            case "/work" -> {
                long ms = query != null && query.startsWith("ms=") ? Long.parseLong(query.substring(3)) : 0;
                try {
                    Thread.sleep(ms);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                answer(exchange, 200, "{\"version\": \"" + VERSION + "\", \"worked_ms\": " + ms + "}");
            }
            case "/healthz", "/readyz" -> answer(exchange, 200, "\"ok\"");
            default -> answer(exchange, 404, "{\"error\": \"not found\"}");
        }
    }

    static void answer(HttpExchange exchange, int status, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, bytes.length);
        exchange.getResponseBody().write(bytes);
        exchange.close();
    }
}
