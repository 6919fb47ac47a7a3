//! The watch registry: which connection watches which path, and who is told
//! when a change fires. It mirrors Apache ZooKeeper 3.8.0's two managers —
//! one for data watches (getData, exists, persistent, persistent-recursive)
//! and one for child watches (getChildren, persistent, persistent-recursive)
//! — and its rule that a (connection, path) pair has one mode per manager: a
//! later registration replaces the earlier mode, so a getData watch set on a
//! path that had a persistent watch makes it one-shot again, as in 3.8.0.
//!
//! It does not know the tree: apply reports what changed and the caller
//! passes each change to `trigger`. It is internally synchronised so I/O
//! threads (register, remove) and the applier (trigger) share one instance.
//!
//! Invariant: the per-path and per-watcher indexes of each manager describe
//! the same set of (path, watcher) pairs, and `recursive` counts the pairs in
//! persistent-recursive mode, so that `trigger` walks ancestors only when
//! some recursive watch exists.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::types::{EventType, KeeperState, WatcherEvent, WatcherId, WatcherType};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// One-shot: consumed by the first event that fires it.
    Standard,
    Persistent,
    PersistentRecursive,
}

#[derive(Default, Debug)]
struct Manager {
    by_path: HashMap<Box<str>, HashMap<WatcherId, Mode>>,
    by_watcher: HashMap<WatcherId, HashSet<Box<str>>>,
    recursive: usize,
    total: usize,
}

impl Manager {
    fn add(&mut self, path: &str, watcher: WatcherId, mode: Mode) {
        let watchers = self.by_path.entry(Box::from(path)).or_default();
        match watchers.insert(watcher, mode) {
            Some(old) => {
                if old == Mode::PersistentRecursive {
                    self.recursive -= 1;
                }
            }
            None => {
                self.total += 1;
                self.by_watcher
                    .entry(watcher)
                    .or_default()
                    .insert(Box::from(path));
            }
        }
        if mode == Mode::PersistentRecursive {
            self.recursive += 1;
        }
    }

    fn remove(&mut self, path: &str, watcher: WatcherId) -> bool {
        let Some(watchers) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(mode) = watchers.remove(&watcher) else {
            return false;
        };
        if watchers.is_empty() {
            self.by_path.remove(path);
        }
        self.forget(path, watcher, mode);
        true
    }

    /// Drops the per-watcher entry and counters of a pair already removed
    /// from `by_path`.
    fn forget(&mut self, path: &str, watcher: WatcherId, mode: Mode) {
        self.total -= 1;
        if mode == Mode::PersistentRecursive {
            self.recursive -= 1;
        }
        if let Some(paths) = self.by_watcher.get_mut(&watcher) {
            paths.remove(path);
            if paths.is_empty() {
                self.by_watcher.remove(&watcher);
            }
        }
    }

    fn contains(&self, path: &str, watcher: WatcherId) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|w| w.contains_key(&watcher))
    }

    fn remove_watcher(&mut self, watcher: WatcherId) {
        let Some(paths) = self.by_watcher.remove(&watcher) else {
            return;
        };
        for path in paths.iter() {
            if let Some(watchers) = self.by_path.get_mut(path) {
                if let Some(mode) = watchers.remove(&watcher) {
                    self.total -= 1;
                    if mode == Mode::PersistentRecursive {
                        self.recursive -= 1;
                    }
                }
                if watchers.is_empty() {
                    self.by_path.remove(path);
                }
            }
        }
    }

    /// Collects the watchers `event` at `path` fires into `fired` (a set, so
    /// a watcher matched twice is told once) and consumes the one-shot ones.
    /// Watches at the path itself fire in every mode; watches on ancestors
    /// fire only if recursive; recursive watches ignore NodeChildrenChanged.
    fn trigger(&mut self, path: &str, event: EventType, fired: &mut Vec<WatcherId>) {
        let mut at = Some(path);
        let mut at_parent = false;
        while let Some(current) = at {
            let mut consumed = Vec::new();
            if let Some(watchers) = self.by_path.get_mut(current) {
                for (&watcher, &mode) in watchers.iter() {
                    match mode {
                        Mode::PersistentRecursive if event != EventType::NodeChildrenChanged => {
                            fired.push(watcher)
                        }
                        Mode::Persistent if !at_parent => fired.push(watcher),
                        Mode::Standard if !at_parent => {
                            fired.push(watcher);
                            consumed.push(watcher);
                        }
                        _ => {}
                    }
                }
                for watcher in &consumed {
                    watchers.remove(watcher);
                }
                if watchers.is_empty() {
                    self.by_path.remove(current);
                }
            }
            for watcher in consumed {
                self.forget(current, watcher, Mode::Standard);
            }
            if self.recursive == 0 {
                break;
            }
            at = parent(current);
            at_parent = true;
        }
    }

    fn paths_of(&self) -> Vec<(WatcherId, Vec<String>)> {
        let mut out: Vec<(WatcherId, Vec<String>)> = self
            .by_watcher
            .iter()
            .map(|(w, paths)| {
                let mut paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
                paths.sort();
                (*w, paths)
            })
            .collect();
        out.sort_by_key(|(w, _)| *w);
        out
    }

    fn watchers_of(&self) -> Vec<(String, Vec<WatcherId>)> {
        let mut out: Vec<(String, Vec<WatcherId>)> = self
            .by_path
            .iter()
            .map(|(p, watchers)| {
                let mut watchers: Vec<WatcherId> = watchers.keys().copied().collect();
                watchers.sort();
                (p.to_string(), watchers)
            })
            .collect();
        out.sort();
        out
    }
}

/// `/a/b` → `/a` → `/` → end.
fn parent(path: &str) -> Option<&str> {
    if path == "/" || path.is_empty() {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

#[derive(Default, Debug)]
struct Managers {
    data: Manager,
    child: Manager,
}

/// Watch counts as the `wchs` four-letter word reports them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WatchSummary {
    pub connections: usize,
    pub paths: usize,
    pub watches: usize,
}

#[derive(Default, Debug)]
pub struct WatchRegistry {
    inner: Mutex<Managers>,
    /// Watches in both managers; lets `trigger` skip the lock when there are
    /// none, the common case for writes. Updated under the lock.
    total: AtomicUsize,
}

impl WatchRegistry {
    pub fn new() -> Self {
        WatchRegistry::default()
    }

    fn update<R>(&self, f: impl FnOnce(&mut Managers) -> R) -> R {
        let mut managers = self.inner.lock();
        let result = f(&mut managers);
        self.total.store(
            managers.data.total + managers.child.total,
            Ordering::Release,
        );
        result
    }

    /// A one-shot data watch: getData on an existing node, exists on any.
    pub fn add_data(&self, path: &str, w: WatcherId) {
        self.update(|m| m.data.add(path, w, Mode::Standard));
    }

    /// A one-shot child watch: getChildren on an existing node.
    pub fn add_child(&self, path: &str, w: WatcherId) {
        self.update(|m| m.child.add(path, w, Mode::Standard));
    }

    /// addWatch. As in 3.8.0 both kinds go in both managers; a recursive
    /// watch never fires for NodeChildrenChanged, so its child-manager entry
    /// matters only to checkWatches/removeWatches of type Children and to
    /// deletes (where it is deduplicated).
    pub fn add_persistent(&self, path: &str, w: WatcherId, recursive: bool) {
        let mode = if recursive {
            Mode::PersistentRecursive
        } else {
            Mode::Persistent
        };
        self.update(|m| {
            m.data.add(path, w, mode);
            m.child.add(path, w, mode);
        });
    }

    /// Fires `event` at `path` and returns who to tell, each watcher once,
    /// ordered by watcher id. NodeCreated and NodeDataChanged fire data
    /// watches; NodeChildrenChanged (with the parent's path) fires child
    /// watches; NodeDeleted fires data watches then child watches, a watcher
    /// told by the first not told again. One-shot watches are consumed.
    pub fn trigger(&self, path: &str, event: EventType) -> Vec<(WatcherId, WatcherEvent)> {
        if self.total.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let mut fired = Vec::new();
        self.update(|m| match event {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                m.data.trigger(path, event, &mut fired)
            }
            EventType::NodeChildrenChanged => m.child.trigger(path, event, &mut fired),
            EventType::NodeDeleted => {
                m.data.trigger(path, event, &mut fired);
                m.child.trigger(path, event, &mut fired);
            }
            _ => {}
        });
        fired.sort();
        fired.dedup();
        fired
            .into_iter()
            .map(|w| {
                let event = WatcherEvent {
                    event_type: event,
                    state: KeeperState::SyncConnected,
                    path: path.to_string(),
                };
                (w, event)
            })
            .collect()
    }

    /// removeWatches: drops this connection's watch on exactly `path` from
    /// the managers `t` names, whatever its mode. False when none was there
    /// (the caller answers NoWatcher).
    pub fn remove(&self, path: &str, w: WatcherId, t: WatcherType) -> bool {
        self.update(|m| match t {
            WatcherType::Children => m.child.remove(path, w),
            WatcherType::Data => m.data.remove(path, w),
            WatcherType::Any => {
                let child = m.child.remove(path, w);
                let data = m.data.remove(path, w);
                child || data
            }
        })
    }

    /// checkWatches: whether this connection has a watch on exactly `path`
    /// in the managers `t` names. (3.8.0 answers true when any connection
    /// watches the path; we answer for the asking connection only.)
    pub fn contains(&self, path: &str, w: WatcherId, t: WatcherType) -> bool {
        let m = self.inner.lock();
        match t {
            WatcherType::Children => m.child.contains(path, w),
            WatcherType::Data => m.data.contains(path, w),
            WatcherType::Any => m.child.contains(path, w) || m.data.contains(path, w),
        }
    }

    /// The connection closed: forget all its watches.
    pub fn remove_watcher(&self, w: WatcherId) {
        self.update(|m| {
            m.data.remove_watcher(w);
            m.child.remove_watcher(w);
        });
    }

    /// Every watch in both managers (`mntr`'s watch_count).
    pub fn count(&self) -> usize {
        let m = self.inner.lock();
        m.data.total + m.child.total
    }

    /// Paths with a data watch (`wchs`, which in the reference reports the
    /// data-watch manager only).
    pub fn paths_count(&self) -> usize {
        self.inner.lock().data.by_path.len()
    }

    /// Connections with a data watch (`wchs`).
    pub fn watchers_count(&self) -> usize {
        self.inner.lock().data.by_watcher.len()
    }

    /// `wchs`: connections, paths and watches of the data-watch manager.
    pub fn summary(&self) -> WatchSummary {
        let m = self.inner.lock();
        WatchSummary {
            connections: m.data.by_watcher.len(),
            paths: m.data.by_path.len(),
            watches: m.data.total,
        }
    }

    /// `wchc`: data-watched paths by connection, sorted.
    pub fn by_watcher(&self) -> Vec<(WatcherId, Vec<String>)> {
        self.inner.lock().data.paths_of()
    }

    /// `wchp`: connections by data-watched path, sorted.
    pub fn by_path(&self) -> Vec<(String, Vec<WatcherId>)> {
        self.inner.lock().data.watchers_of()
    }

    /// Child watches by connection (not shown by the reference's 4lw; for
    /// tests and diagnostics).
    pub fn child_by_watcher(&self) -> Vec<(WatcherId, Vec<String>)> {
        self.inner.lock().child.paths_of()
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        let m = self.inner.lock();
        for manager in [&m.data, &m.child] {
            let pairs: usize = manager.by_path.values().map(|w| w.len()).sum();
            let pairs2: usize = manager.by_watcher.values().map(|p| p.len()).sum();
            assert_eq!(pairs, manager.total);
            assert_eq!(pairs2, manager.total);
            let rec = manager
                .by_path
                .values()
                .flat_map(|w| w.values())
                .filter(|m| **m == Mode::PersistentRecursive)
                .count();
            assert_eq!(rec, manager.recursive);
            for (path, watchers) in &manager.by_path {
                assert!(!watchers.is_empty());
                for w in watchers.keys() {
                    assert!(manager.by_watcher[w].contains(path));
                }
            }
        }
        assert_eq!(
            self.total.load(Ordering::Acquire),
            m.data.total + m.child.total
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventType::*;

    const A: WatcherId = WatcherId(1);
    const B: WatcherId = WatcherId(2);

    /// Runs one trigger and renders who was told, e.g. "1:NodeDeleted:/a".
    #[track_caller]
    fn check(reg: &WatchRegistry, path: &str, event: EventType, expected: &str) {
        let got: Vec<String> = reg
            .trigger(path, event)
            .into_iter()
            .map(|(w, e)| {
                assert_eq!(e.state, KeeperState::SyncConnected);
                format!("{}:{:?}:{}", w.0, e.event_type, e.path)
            })
            .collect();
        assert_eq!(got.join(" "), expected, "trigger {event:?} at {path}");
        reg.check_invariants();
    }

    #[test]
    fn one_shot_watches_are_consumed() {
        let reg = WatchRegistry::new();
        reg.add_data("/a", A);
        reg.add_child("/a", A);
        check(&reg, "/a", NodeDataChanged, "1:NodeDataChanged:/a");
        check(&reg, "/a", NodeDataChanged, "");
        check(&reg, "/a", NodeChildrenChanged, "1:NodeChildrenChanged:/a");
        check(&reg, "/a", NodeChildrenChanged, "");
        assert_eq!(reg.count(), 0);
    }

    // ZK-BEHAVIOURS 15: a data and a child watch on a deleted node give one event.
    #[test]
    fn delete_tells_each_watcher_once() {
        let reg = WatchRegistry::new();
        reg.add_data("/a", A);
        reg.add_child("/a", A);
        reg.add_child("/a", B);
        check(&reg, "/a", NodeDeleted, "1:NodeDeleted:/a 2:NodeDeleted:/a");
        assert_eq!(reg.count(), 0, "both one-shot watches consumed");
    }

    #[test]
    fn persistent_watches_stay_and_recursive_match_descendants() {
        let reg = WatchRegistry::new();
        reg.add_persistent("/a", A, false);
        reg.add_persistent("/", B, true);
        check(
            &reg,
            "/a",
            NodeDataChanged,
            "1:NodeDataChanged:/a 2:NodeDataChanged:/a",
        );
        check(&reg, "/a", NodeChildrenChanged, "1:NodeChildrenChanged:/a");
        check(&reg, "/a/b/c", NodeCreated, "2:NodeCreated:/a/b/c");
        check(&reg, "/a/b", NodeDeleted, "2:NodeDeleted:/a/b");
        check(&reg, "/a", NodeDeleted, "1:NodeDeleted:/a 2:NodeDeleted:/a");
        assert_eq!(reg.count(), 4, "persistent watches survive");
        assert!(
            reg.contains("/", B, WatcherType::Children),
            "3.8.0 puts recursive in both"
        );
        assert!(reg.remove("/", B, WatcherType::Data));
        check(&reg, "/x", NodeCreated, "");
        assert!(reg.remove("/", B, WatcherType::Children));
        assert!(!reg.remove("/", B, WatcherType::Any));
    }

    #[test]
    fn later_registration_replaces_mode() {
        let reg = WatchRegistry::new();
        reg.add_persistent("/a", A, false);
        reg.add_data("/a", A);
        check(&reg, "/a", NodeDataChanged, "1:NodeDataChanged:/a");
        check(&reg, "/a", NodeDataChanged, "");
    }

    #[test]
    fn ancestors_without_recursive_watches_do_not_fire() {
        let reg = WatchRegistry::new();
        reg.add_data("/a", A);
        reg.add_persistent("/a", B, false);
        check(&reg, "/a/b", NodeCreated, "");
        reg.add_persistent("/z", B, true);
        check(&reg, "/a/b", NodeCreated, "");
    }

    #[test]
    fn remove_and_contains_by_type() {
        let reg = WatchRegistry::new();
        reg.add_data("/a", A);
        assert!(reg.contains("/a", A, WatcherType::Data));
        assert!(reg.contains("/a", A, WatcherType::Any));
        assert!(!reg.contains("/a", A, WatcherType::Children));
        assert!(
            !reg.contains("/a", B, WatcherType::Data),
            "another connection's watch"
        );
        assert!(!reg.remove("/a", A, WatcherType::Children));
        assert!(reg.remove("/a", A, WatcherType::Any));
        assert!(!reg.remove("/a", A, WatcherType::Any));
        reg.check_invariants();
    }

    #[test]
    fn closing_a_connection_drops_its_watches() {
        let reg = WatchRegistry::new();
        reg.add_data("/a", A);
        reg.add_child("/b", A);
        reg.add_persistent("/c", A, true);
        reg.add_data("/a", B);
        assert_eq!(reg.count(), 5);
        assert_eq!(
            reg.summary(),
            WatchSummary {
                connections: 2,
                paths: 2,
                watches: 3
            }
        );
        assert_eq!(
            reg.by_path(),
            vec![("/a".to_string(), vec![A, B]), ("/c".to_string(), vec![A])]
        );
        reg.remove_watcher(A);
        reg.check_invariants();
        assert_eq!(reg.count(), 1);
        assert_eq!(reg.by_watcher(), vec![(B, vec!["/a".to_string()])]);
        check(&reg, "/c/d", NodeCreated, "");
    }
}
