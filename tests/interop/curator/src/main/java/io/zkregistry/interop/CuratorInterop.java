package io.zkregistry.interop;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;
import org.apache.curator.x.discovery.details.ServiceCacheListener;

/**
 * Apache Curator's own service discovery, driven by zkregistry's interop tests. Every line that it
 * writes to stdout is one JSON object; it runs until stdin closes.
 *
 * <pre>
 *   watch    CONNECT BASE_PATH SERVICE                  ServiceDiscovery + ServiceCache: one line per change
 *   register CONNECT BASE_PATH SERVICE ID ADDRESS PORT  registerService(), unregistered when stdin closes
 *   decode                                              one ServiceInstance JSON per stdin line, read by
 *                                                       JsonInstanceSerializer(Map.class) and written back
 * </pre>
 *
 * The payload type is Map, as a Curator client that wants to read another writer's payload uses.
 */
@SuppressWarnings({"rawtypes", "unchecked"})
public final class CuratorInterop {
    private static final ObjectMapper JSON = new ObjectMapper();

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            usage();
        }
        switch (args[0]) {
            case "watch" -> {
                if (args.length != 4) usage();
                watch(args[1], args[2], args[3]);
            }
            case "register" -> {
                if (args.length != 7) usage();
                register(args[1], args[2], args[3], args[4], args[5], Integer.parseInt(args[6]));
            }
            case "decode" -> decode();
            default -> usage();
        }
    }

    private static void usage() {
        System.err.println("usage: watch CONNECT BASE_PATH SERVICE | register CONNECT BASE_PATH SERVICE ID ADDRESS PORT | decode");
        System.exit(2);
    }

    private static synchronized void emit(Map<String, Object> line) {
        try {
            System.out.println(JSON.writeValueAsString(line));
            System.out.flush();
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    private static Map<String, Object> event(String kind) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("event", kind);
        line.put("t", System.currentTimeMillis());
        return line;
    }

    private static Map<String, Object> describe(ServiceInstance<Map> instance) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("name", instance.getName());
        out.put("id", instance.getId());
        out.put("address", instance.getAddress());
        out.put("port", instance.getPort());
        out.put("sslPort", instance.getSslPort());
        out.put("enabled", instance.isEnabled());
        out.put("registrationTimeUTC", instance.getRegistrationTimeUTC());
        out.put("serviceType", String.valueOf(instance.getServiceType()));
        out.put("payload", instance.getPayload());
        out.put("payloadClass", instance.getPayload() == null ? null : instance.getPayload().getClass().getName());
        return out;
    }

    private static CuratorFramework connect(String connect) throws Exception {
        CuratorFramework client = CuratorFrameworkFactory.newClient(
                connect, 10_000, 5_000, new ExponentialBackoffRetry(100, 20, 2_000));
        client.start();
        if (!client.blockUntilConnected(60, TimeUnit.SECONDS)) {
            throw new IllegalStateException("cannot connect to " + connect);
        }
        return client;
    }

    private static ServiceDiscovery<Map> discovery(CuratorFramework client, String basePath) throws Exception {
        ServiceDiscovery<Map> discovery = ServiceDiscoveryBuilder.builder(Map.class)
                .client(client)
                .basePath(basePath)
                .serializer(new JsonInstanceSerializer<>(Map.class))
                .build();
        discovery.start();
        return discovery;
    }

    private static void awaitStdinClosed() throws Exception {
        while (System.in.read() != -1) {
            // nothing: only the end of stdin matters
        }
    }

    private static void watch(String connect, String basePath, String service) throws Exception {
        try (CuratorFramework client = connect(connect);
                ServiceDiscovery<Map> discovery = discovery(client, basePath)) {
            ServiceCache<Map> cache = discovery.serviceCacheBuilder().name(service).build();
            cache.addListener(new ServiceCacheListener() {
                @Override
                public void cacheChanged() {
                    emit(snapshot("changed", cache));
                }

                @Override
                public void stateChanged(CuratorFramework c, ConnectionState state) {
                    Map<String, Object> line = event("state");
                    line.put("state", state.name());
                    emit(line);
                }
            });
            cache.start();
            emit(snapshot("initial", cache));
            awaitStdinClosed();
            cache.close();
        }
    }

    private static Map<String, Object> snapshot(String kind, ServiceCache<Map> cache) {
        Map<String, Object> line = event(kind);
        List<ServiceInstance<Map>> instances = new ArrayList<>(cache.getInstances());
        instances.sort((a, b) -> a.getId().compareTo(b.getId()));
        List<String> ids = new ArrayList<>();
        List<Map<String, Object>> described = new ArrayList<>();
        for (ServiceInstance<Map> instance : instances) {
            ids.add(instance.getId());
            described.add(describe(instance));
        }
        line.put("ids", ids);
        line.put("instances", described);
        return line;
    }

    private static void register(String connect, String basePath, String service, String id, String address, int port)
            throws Exception {
        try (CuratorFramework client = connect(connect);
                ServiceDiscovery<Map> discovery = discovery(client, basePath)) {
            Map<String, Object> payload = new LinkedHashMap<>();
            payload.put("registeredBy", "curator");
            ServiceInstance<Map> instance = ServiceInstance.<Map>builder()
                    .name(service)
                    .id(id)
                    .address(address)
                    .port(port)
                    .payload(payload)
                    .build();
            discovery.registerService(instance);
            Map<String, Object> line = event("registered");
            line.put("instance", describe(instance));
            emit(line);
            awaitStdinClosed();
            discovery.unregisterService(instance);
        }
    }

    private static void decode() throws Exception {
        JsonInstanceSerializer<Map> serializer = new JsonInstanceSerializer<>(Map.class);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String text;
        while ((text = in.readLine()) != null) {
            Map<String, Object> line = new LinkedHashMap<>();
            try {
                ServiceInstance<Map> instance = serializer.deserialize(text.getBytes(StandardCharsets.UTF_8));
                line.put("ok", true);
                line.put("instance", describe(instance));
                line.put("serialized", new String(serializer.serialize(instance), StandardCharsets.UTF_8));
            } catch (Exception e) {
                line.put("ok", false);
                line.put("error", e.getClass().getSimpleName() + ": " + e.getMessage());
            }
            emit(line);
        }
    }
}
