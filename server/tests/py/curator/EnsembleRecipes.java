// Curator 5.4 recipes against a replicated ensemble, one client per member:
// a contended InterProcessMutex, a LeaderLatch hand-over, queues, and
// CuratorCache / PathChildrenCache events. Run by test_curator.py with the
// members' client addresses as arguments; exit status 0 means every check
// held, anything else names the first that did not.
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.cache.PathChildrenCache;
import org.apache.curator.framework.recipes.cache.PathChildrenCacheEvent;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.recipes.queue.SimpleDistributedQueue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.Watcher;

public class EnsembleRecipes {
    static final long WAIT_S = 30;

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String str(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    /** Connection state changes of every client, printed on failure. */
    static final List<String> STATES = Collections.synchronizedList(new ArrayList<>());
    static final AtomicReference<List<String>> RAW_EVENTS = new AtomicReference<>();

    static CuratorFramework client(String hosts) throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.builder()
                .connectString(hosts)
                .sessionTimeoutMs(10000)
                .connectionTimeoutMs(10000)
                .retryPolicy(new ExponentialBackoffRetry(100, 5))
                .build();
        c.getConnectionStateListenable().addListener((client, state) ->
                STATES.add(System.currentTimeMillis() + " " + hosts + " " + state));
        c.start();
        check(c.blockUntilConnected(20, TimeUnit.SECONDS), "client on " + hosts + " connected");
        return c;
    }

    /** Threads on every client take turns under one mutex; a counter in a
     * znode, read and written without versions under the lock, must count
     * every turn, and no two holders may overlap. */
    static void lock(List<CuratorFramework> clients, String base) throws Exception {
        String counter = base + "/counter";
        clients.get(0).create().creatingParentsIfNeeded().forPath(counter, bytes("0"));
        final int turns = 15;
        AtomicInteger holders = new AtomicInteger();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> threads = new ArrayList<>();
        for (CuratorFramework c : clients) {
            for (int t = 0; t < 2; t++) {
                Thread th = new Thread(() -> {
                    InterProcessMutex mutex = new InterProcessMutex(c, base + "/lock");
                    try {
                        for (int i = 0; i < turns; i++) {
                            check(mutex.acquire(WAIT_S, TimeUnit.SECONDS), "lock acquired");
                            try {
                                check(holders.incrementAndGet() == 1, "one lock holder at a time");
                                int n = Integer.parseInt(str(c.getData().forPath(counter)));
                                c.setData().forPath(counter, bytes(Integer.toString(n + 1)));
                                holders.decrementAndGet();
                            } finally {
                                mutex.release();
                            }
                        }
                    } catch (Throwable e) {
                        failure.compareAndSet(null, e);
                    }
                });
                th.start();
                threads.add(th);
            }
        }
        for (Thread th : threads) {
            th.join(TimeUnit.SECONDS.toMillis(120));
            check(!th.isAlive(), "lock thread finished");
        }
        if (failure.get() != null) {
            throw new AssertionError("lock: " + failure.get(), failure.get());
        }
        int want = clients.size() * 2 * turns;
        for (CuratorFramework c : clients) {
            c.sync().forPath(counter);
            String got = str(c.getData().forPath(counter));
            check(got.equals(Integer.toString(want)), "counter " + got + " == " + want);
        }
        System.out.println("PASS lock: " + want + " turns, no overlap");
    }

    static List<Integer> leaders(List<LeaderLatch> latches) {
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < latches.size(); i++) {
            if (latches.get(i).getState() == LeaderLatch.State.STARTED && latches.get(i).hasLeadership()) {
                out.add(i);
            }
        }
        return out;
    }

    static int waitOneLeader(List<LeaderLatch> latches) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        while (System.nanoTime() < deadline) {
            List<Integer> l = leaders(latches);
            if (l.size() == 1) {
                // Still exactly one a moment later: not a hand-over in progress.
                Thread.sleep(200);
                if (leaders(latches).equals(l)) {
                    return l.get(0);
                }
            }
            check(l.size() <= 1, "at most one leader, have " + l);
            Thread.sleep(50);
        }
        throw new AssertionError("no single leader: " + leaders(latches));
    }

    static void leaderLatch(List<CuratorFramework> clients, String base) throws Exception {
        List<LeaderLatch> latches = new ArrayList<>();
        for (int i = 0; i < clients.size(); i++) {
            LeaderLatch l = new LeaderLatch(clients.get(i), base + "/latch", "p" + i);
            l.start();
            latches.add(l);
        }
        int first = waitOneLeader(latches);
        String id = latches.get(first).getLeader().getId();
        check(id.equals("p" + first), "getLeader " + id + " is p" + first);
        latches.get(first).close();
        int second = waitOneLeader(latches);
        check(second != first, "another participant took over");
        for (LeaderLatch l : latches) {
            if (l.getState() == LeaderLatch.State.STARTED) {
                l.close();
            }
        }
        System.out.println("PASS leader latch: p" + first + " then p" + second);
    }

    static final QueueSerializer<String> SERIALIZER = new QueueSerializer<String>() {
        public byte[] serialize(String item) {
            return bytes(item);
        }

        public String deserialize(byte[] b) {
            return str(b);
        }
    };

    static void queues(List<CuratorFramework> clients, String base) throws Exception {
        // SimpleDistributedQueue: offer through one member, take through another, FIFO.
        SimpleDistributedQueue producer = new SimpleDistributedQueue(clients.get(0), base + "/simple");
        SimpleDistributedQueue consumer = new SimpleDistributedQueue(clients.get(1), base + "/simple");
        for (int i = 0; i < 10; i++) {
            check(producer.offer(bytes("item-" + i)), "offer");
        }
        for (int i = 0; i < 10; i++) {
            byte[] got = consumer.poll(WAIT_S, TimeUnit.SECONDS);
            check(got != null && str(got).equals("item-" + i), "take item-" + i + " got " + (got == null ? null : str(got)));
        }
        check(consumer.poll() == null, "queue empty");

        // DistributedQueue: put through one member, consumed through another.
        BlockingQueue<String> received = new LinkedBlockingQueue<>();
        QueueConsumer<String> sink = new QueueConsumer<String>() {
            public void consumeMessage(String message) {
                received.add(message);
            }

            public void stateChanged(CuratorFramework client, ConnectionState newState) {
            }
        };
        DistributedQueue<String> putter = QueueBuilder.builder(clients.get(0), null, SERIALIZER, base + "/dq").buildQueue();
        DistributedQueue<String> taker = QueueBuilder.builder(clients.get(2), sink, SERIALIZER, base + "/dq").buildQueue();
        putter.start();
        taker.start();
        for (int i = 0; i < 10; i++) {
            putter.put("msg-" + i);
        }
        List<String> got = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            String m = received.poll(WAIT_S, TimeUnit.SECONDS);
            check(m != null, "DistributedQueue delivered " + got.size() + " of 10");
            got.add(m);
        }
        List<String> want = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            want.add("msg-" + i);
        }
        check(got.equals(want), "DistributedQueue order " + got);
        putter.close();
        taker.close();
        System.out.println("PASS queues: SimpleDistributedQueue FIFO, DistributedQueue 10 messages in order");
    }

    static String poll(BlockingQueue<String> q, String what) throws Exception {
        String e = q.poll(WAIT_S, TimeUnit.SECONDS);
        check(e != null, "event " + what);
        return e;
    }

    static void caches(List<CuratorFramework> clients, String base) throws Exception {
        String root = base + "/cache";
        clients.get(0).create().creatingParentsIfNeeded().forPath(root, bytes("root"));
        clients.get(0).create().forPath(root + "/pre", bytes("0"));

        clients.get(1).sync().forPath(root);
        clients.get(2).sync().forPath(root);
        // The raw persistent recursive watch events the cache's client gets,
        // printed on failure: tells a lost event from a cache bug.
        List<String> rawEvents = Collections.synchronizedList(new ArrayList<>());
        clients.get(1).watchers().add().withMode(AddWatchMode.PERSISTENT_RECURSIVE)
                .usingWatcher((Watcher) ev -> rawEvents.add(ev.getType() + " " + ev.getPath()))
                .forPath(root);
        RAW_EVENTS.set(rawEvents);

        BlockingQueue<String> curatorEvents = new LinkedBlockingQueue<>();
        CuratorCache cache = CuratorCache.build(clients.get(1), root);
        CountDownLatch initialized = new CountDownLatch(1);
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forCreates(n -> curatorEvents.add("created " + n.getPath() + "=" + str(n.getData())))
                .forChanges((o, n) -> curatorEvents.add("changed " + n.getPath() + "=" + str(n.getData())))
                .forDeletes(o -> curatorEvents.add("deleted " + o.getPath()))
                .forInitialized(initialized::countDown)
                .build());
        cache.start();

        BlockingQueue<String> childEvents = new LinkedBlockingQueue<>();
        @SuppressWarnings("deprecation")
        PathChildrenCache children = new PathChildrenCache(clients.get(2), root, true);
        children.getListenable().addListener((c, e) -> {
            ChildData d = e.getData();
            if (d != null) {
                childEvents.add(e.getType() + " " + d.getPath() + (d.getData() == null ? "" : "=" + str(d.getData())));
            } else {
                childEvents.add(e.getType().toString());
            }
        });
        children.start(PathChildrenCache.StartMode.POST_INITIALIZED_EVENT);

        check(initialized.await(WAIT_S, TimeUnit.SECONDS), "CuratorCache initialized");
        List<String> initial = new ArrayList<>();
        initial.add(poll(curatorEvents, "initial 1"));
        initial.add(poll(curatorEvents, "initial 2"));
        check(new HashSet<>(initial).equals(Set.of("created " + root + "=root", "created " + root + "/pre=0")), "CuratorCache initial " + initial);
        check(poll(childEvents, "initial child").equals("CHILD_ADDED " + root + "/pre=0"), "PathChildrenCache initial");
        check(poll(childEvents, "initialized").equals("INITIALIZED"), "PathChildrenCache initialized");

        // One change at a time, each awaited in the cache (CuratorCache
        // re-reads data after an event, so back-to-back changes may fold).
        CuratorFramework writer = clients.get(0);
        List<String> got = new ArrayList<>();
        writer.create().forPath(root + "/a", bytes("1"));
        got.add(poll(curatorEvents, "CuratorCache created /a"));
        writer.setData().forPath(root + "/a", bytes("2"));
        got.add(poll(curatorEvents, "CuratorCache changed /a"));
        writer.delete().forPath(root + "/a");
        got.add(poll(curatorEvents, "CuratorCache deleted /a"));
        List<String> want = List.of("created " + root + "/a=1", "changed " + root + "/a=2", "deleted " + root + "/a");
        check(got.equals(want), "CuratorCache events " + got);
        check(!cache.get(root + "/a").isPresent() && cache.size() == 2, "CuratorCache holds root and pre");
        // The raw watch saw every change, in order.
        List<String> wantRaw = List.of("NodeCreated " + root + "/a", "NodeDataChanged " + root + "/a", "NodeDeleted " + root + "/a");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        while (rawEvents.size() < 3 && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        check(rawEvents.equals(wantRaw), "raw persistent recursive watch events " + rawEvents);

        // PathChildrenCache re-reads data on each event, so an update may be
        // folded away; the add and the remove must come, in that order.
        List<String> pc = new ArrayList<>();
        while (pc.isEmpty() || !pc.get(pc.size() - 1).startsWith("CHILD_REMOVED")) {
            pc.add(poll(childEvents, "PathChildrenCache after " + pc));
        }
        check(pc.get(0).startsWith("CHILD_ADDED " + root + "/a"), "PathChildrenCache add first " + pc);
        check(pc.get(pc.size() - 1).startsWith("CHILD_REMOVED " + root + "/a"), "PathChildrenCache remove last " + pc);
        cache.close();
        children.close();
        System.out.println("PASS caches: raw watch " + rawEvents + "; CuratorCache " + got + "; PathChildrenCache " + pc);
    }

    public static void main(String[] args) throws Exception {
        check(args.length >= 2, "usage: EnsembleRecipes base-path host:port...");
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(TimeUnit.SECONDS.toMillis(150));
                System.out.println("FAIL watchdog: still running after 150 s");
                Runtime.getRuntime().halt(3);
            } catch (InterruptedException e) {
                // finished in time
            }
        });
        watchdog.setDaemon(true);
        watchdog.start();
        String base = args[0];
        List<CuratorFramework> clients = new ArrayList<>();
        int status = 0;
        try {
            for (int i = 1; i < args.length; i++) {
                clients.add(client(args[i]));
            }
            lock(clients, base + "/lock");
            leaderLatch(clients, base + "/latch");
            queues(clients, base + "/queue");
            caches(clients, base + "/cache");
        } catch (Throwable e) {
            System.out.println("FAIL " + e);
            e.printStackTrace(System.out);
            System.out.println("connection states: " + STATES);
            System.out.println("raw persistent watch events on the cache's client: " + RAW_EVENTS.get());
            status = 1;
        } finally {
            for (CuratorFramework c : clients) {
                c.close();
            }
        }
        System.out.flush();
        Runtime.getRuntime().halt(status);
    }
}
