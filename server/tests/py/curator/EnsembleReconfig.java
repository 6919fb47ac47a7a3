// Curator 5.4's reconfig API against a replicated ensemble started with
// reconfigEnabled: getConfig().forEnsemble() reads the member list, a
// non-super client's reconfig is refused (NoAuth), a super client removes
// the last server and adds it back from the version it read, and a stale
// fromConfig is refused (BadVersion). Run by test_curator.py with the
// members' client addresses and the last member's server line as arguments;
// exit status 0 means every check held.
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;

public class EnsembleReconfig {
    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    static CuratorFramework client(String hosts, boolean superUser) throws Exception {
        CuratorFrameworkFactory.Builder builder = CuratorFrameworkFactory.builder()
                .connectString(hosts)
                .sessionTimeoutMs(10000)
                .connectionTimeoutMs(10000)
                .retryPolicy(new ExponentialBackoffRetry(100, 5));
        if (superUser) {
            builder.authorization("digest", "super:test".getBytes(StandardCharsets.UTF_8));
        }
        CuratorFramework c = builder.build();
        c.start();
        check(c.blockUntilConnected(20, TimeUnit.SECONDS), "client on " + hosts + " connected");
        return c;
    }

    static long version(String config) {
        String[] lines = config.trim().split("\n");
        String last = lines[lines.length - 1];
        check(last.startsWith("version="), "config ends with its version: " + config);
        return Long.parseLong(last.substring("version=".length()), 16);
    }

    public static void main(String[] args) throws Exception {
        check(args.length == 3, "usage: EnsembleReconfig hosts last-id last-server-line");
        String hosts = args[0];
        String lastId = args[1];
        String lastLine = args[2];
        int status = 0;
        CuratorFramework plain = null;
        CuratorFramework admin = null;
        try {
            plain = client(hosts, false);
            admin = client(hosts, true);
            Stat stat = new Stat();
            String before = new String(admin.getConfig().storingStatIn(stat).forEnsemble(),
                    StandardCharsets.UTF_8);
            String lastSpec = lastLine.split(";")[0];
            check(before.contains(lastSpec), "getConfig lists " + lastSpec + ": " + before);
            long v0 = version(before);
            try {
                plain.reconfig().leaving(lastId).forEnsemble();
                check(false, "a non-super reconfig is refused");
            } catch (KeeperException.NoAuthException expected) {
                System.out.println("PASS no auth: " + expected.code());
            }
            String removed = new String(admin.reconfig().leaving(lastId).fromConfig(v0).forEnsemble(),
                    StandardCharsets.UTF_8);
            check(!removed.contains("server." + lastId + "="), "server." + lastId + " removed: " + removed);
            long v1 = version(removed);
            check(v1 > v0, "the version grows: " + v0 + " then " + v1);
            try {
                admin.reconfig().joining(lastLine).fromConfig(v0).forEnsemble();
                check(false, "a stale fromConfig is refused");
            } catch (KeeperException.BadVersionException expected) {
                System.out.println("PASS bad version: " + expected.code());
            }
            String added = new String(admin.reconfig().joining(lastLine).fromConfig(v1).forEnsemble(),
                    StandardCharsets.UTF_8);
            check(added.contains(lastLine), "server." + lastId + " back: " + added);
            plain.sync().forPath("/");
            String read = new String(plain.getConfig().forEnsemble(), StandardCharsets.UTF_8);
            check(version(read) == version(added), "getConfig after sync: " + read);
            System.out.println("PASS reconfig: " + removed.replace('\n', ' ') + " then "
                    + added.replace('\n', ' '));
        } catch (Throwable e) {
            System.out.println("FAIL " + e);
            e.printStackTrace(System.out);
            status = 1;
        } finally {
            if (plain != null) {
                plain.close();
            }
            if (admin != null) {
                admin.close();
            }
        }
        System.out.flush();
        Runtime.getRuntime().halt(status);
    }
}
