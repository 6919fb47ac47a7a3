/*
 * A tiny program against Apache ZooKeeper's C client (libzookeeper_mt), built
 * by test_cclient.py at test time with gcc.
 *
 * What it is: one pass through the synchronous API on two handles —
 * zoo_create (null and non-null data, ephemeral, sequential), zoo_get,
 * zoo_wget with a watcher fired by the other handle, zoo_set with versions,
 * zoo_multi (a successful one and a failing one, with per-op results),
 * zoo_exists, zoo_get_children, zoo_delete — printing one line per result in
 * a `key value...` form that the test parses.
 *
 * What it is not: a benchmark or a test of the C client itself.
 *
 * Invariant it keeps: it exits within a bounded time (every wait has a
 * deadline) and prints "done" last only if every step ran.
 *
 * Usage: zk_smoke host:port /unique/prefix
 * Build: gcc -DTHREADED zk_smoke.c -lzookeeper_mt (the sync API needs THREADED)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int connected_count = 0;
static int watch_fired = 0;
static int watch_type = 0;
static char watch_path[512];

static void session_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh; (void)path; (void)ctx;
    if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE) {
        pthread_mutex_lock(&lock);
        connected_count++;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
    }
}

static void data_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh; (void)state; (void)ctx;
    pthread_mutex_lock(&lock);
    watch_fired++;
    watch_type = type;
    snprintf(watch_path, sizeof watch_path, "%s", path ? path : "");
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

/* Wait until *counter >= want, at most `seconds`. Returns 1 on success. */
static int wait_for(int *counter, int want, int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&lock);
    int rc = 0;
    while (*counter < want && rc == 0) {
        rc = pthread_cond_timedwait(&cond, &lock, &deadline);
    }
    int ok = *counter >= want;
    pthread_mutex_unlock(&lock);
    return ok;
}

static const char *type_name(int type) {
    if (type == ZOO_CREATED_EVENT) return "created";
    if (type == ZOO_DELETED_EVENT) return "deleted";
    if (type == ZOO_CHANGED_EVENT) return "changed";
    if (type == ZOO_CHILD_EVENT) return "child";
    return "other";
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s host:port /prefix\n", argv[0]);
        return 2;
    }
    const char *hosts = argv[1];
    const char *p = argv[2];
    char path[512], child[512], buf[1024], created[512];
    int len;
    struct Stat st;

    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zhandle_t *a = zookeeper_init(hosts, session_watcher, 10000, 0, 0, 0);
    zhandle_t *b = zookeeper_init(hosts, session_watcher, 10000, 0, 0, 0);
    if (!a || !b || !wait_for(&connected_count, 2, 15)) {
        printf("connect failed\n");
        return 1;
    }
    printf("connected %d\n", connected_count);

    int rc = zoo_create(a, p, "root", 4, &ZOO_OPEN_ACL_UNSAFE, 0, created, sizeof created);
    printf("create %d %s\n", rc, rc == ZOK ? created : "-");
    snprintf(path, sizeof path, "%s/null", p);
    rc = zoo_create(a, path, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, created, sizeof created);
    printf("create_null %d\n", rc);
    len = sizeof buf;
    rc = zoo_get(a, path, 0, buf, &len, &st);
    printf("get_null %d len %d dataLength %d\n", rc, len, st.dataLength);

    snprintf(path, sizeof path, "%s/seq-", p);
    rc = zoo_create(a, path, "s", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_SEQUENCE, created, sizeof created);
    printf("create_seq %d %s\n", rc, rc == ZOK ? created + strlen(p) : "-");
    snprintf(path, sizeof path, "%s/eph", p);
    rc = zoo_create(a, path, "e", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, created, sizeof created);
    printf("create_eph %d\n", rc);
    rc = zoo_exists(b, path, 0, &st);
    printf("exists_eph %d owner_is_a %d\n", rc, st.ephemeralOwner == zoo_client_id(a)->client_id);
    rc = zoo_create(a, path, "e", 1, &ZOO_OPEN_ACL_UNSAFE, 0, created, sizeof created);
    printf("create_again %d\n", rc);

    /* zoo_wget on handle a, change from handle b. */
    len = sizeof buf;
    rc = zoo_wget(a, p, data_watcher, NULL, buf, &len, &st);
    printf("wget %d %.*s version %d\n", rc, len, buf, st.version);
    rc = zoo_set(b, p, "changed", 7, 0);
    printf("set %d\n", rc);
    int fired = wait_for(&watch_fired, 1, 10);
    printf("watch %d %s %s\n", fired, type_name(watch_type),
           strcmp(watch_path, p) == 0 ? "prefix" : watch_path);
    rc = zoo_set(b, p, "again", 5, 0);
    printf("set_stale %d\n", rc);
    usleep(200000);
    printf("watch_count %d\n", watch_fired);

    /* A successful multi, then a failing one. */
    zoo_op_t ops[3];
    zoo_op_result_t results[3];
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/m1", p);
    snprintf(p2, sizeof p2, "%s/m2", p);
    char out1[512], out2[512];
    struct Stat set_stat;
    zoo_create_op_init(&ops[0], p1, "1", 1, &ZOO_OPEN_ACL_UNSAFE, 0, out1, sizeof out1);
    zoo_set_op_init(&ops[1], p1, "11", 2, 0, &set_stat);
    zoo_create_op_init(&ops[2], p2, "2", 1, &ZOO_OPEN_ACL_UNSAFE, 0, out2, sizeof out2);
    rc = zoo_multi(a, 3, ops, results);
    printf("multi_ok %d %d %d %d version %d\n", rc, results[0].err, results[1].err, results[2].err,
           set_stat.version);
    char p3[512];
    snprintf(p3, sizeof p3, "%s/m3", p);
    zoo_create_op_init(&ops[0], p3, "3", 1, &ZOO_OPEN_ACL_UNSAFE, 0, out1, sizeof out1);
    zoo_check_op_init(&ops[1], p1, 7);
    zoo_delete_op_init(&ops[2], p2, -1);
    rc = zoo_multi(a, 3, ops, results);
    printf("multi_fail %d %d %d %d\n", rc, results[0].err, results[1].err, results[2].err);
    rc = zoo_exists(a, p3, 0, &st);
    printf("exists_after_fail %d\n", rc);

    struct String_vector kids;
    rc = zoo_get_children(b, p, 0, &kids);
    printf("children %d count %d\n", rc, kids.count);
    deallocate_String_vector(&kids);

    rc = zoo_delete(a, p, -1);
    printf("delete_nonempty %d\n", rc);
    snprintf(child, sizeof child, "%s/null", p);
    rc = zoo_delete(a, child, 5);
    printf("delete_badversion %d\n", rc);
    rc = zoo_delete(a, child, 0);
    printf("delete %d\n", rc);
    rc = zoo_exists(a, child, 0, &st);
    printf("exists_deleted %d\n", rc);

    zookeeper_close(a);
    snprintf(path, sizeof path, "%s/eph", p);
    rc = zoo_exists(b, path, 0, &st);
    printf("eph_after_close %d\n", rc);
    zookeeper_close(b);
    printf("done\n");
    return 0;
}
