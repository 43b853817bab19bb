// java-http is the Java example app unik builds into a unikernel: the JDK's own HTTP server,
// no dependencies. unik compiles it with javac, jars it and links a minimal JRE with jlink.
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

public class Main {
    static void reply(HttpExchange ex, int status, byte[] body) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        ex.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(body);
        }
    }

    static void reply(HttpExchange ex, int status, String body) throws IOException {
        reply(ex, status, body.getBytes(StandardCharsets.UTF_8));
    }

    public static void main(String[] args) throws IOException {
        String port = System.getenv("PORT");
        if (port == null || port.isEmpty()) port = "8080";
        HttpServer server = HttpServer.create(new InetSocketAddress(Integer.parseInt(port)), 0);
        server.createContext("/ping_test", ex -> reply(ex, 200, "pong"));
        server.createContext("/env_test", ex -> {
            String v = System.getenv("KEY");
            reply(ex, 200, v == null ? "" : v);
        });
        server.createContext("/mount_test", ex -> {
            try {
                reply(ex, 200, Files.readAllBytes(Path.of("/data/data.txt")));
            } catch (NoSuchFileException e) {
                reply(ex, 404, "no /data/data.txt\n");
            } catch (IOException e) {
                reply(ex, 404, String.valueOf(e.getMessage()) + "\n");
            }
        });
        server.start();
        System.out.println("java-http listening on :" + port + (args.length > 0 ? " (args: " + String.join(" ", args) + ")" : ""));
    }
}
