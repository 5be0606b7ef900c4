//! The explorer: a depth-first walk over every reachable [`World`] with a
//! set of 128-bit state fingerprints, the graph it saw, and the liveness
//! check run backwards over that graph.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use satsuma_model::{Action, Config, Violation, World};

/// What one exploration saw.
#[derive(Debug)]
pub struct Report {
    pub states: usize,
    pub transitions: usize,
    /// The longest shortest path from the empty room.
    pub max_depth: u16,
    pub converged: usize,
    /// States not expanded because their log passed `max_seq`; each one
    /// settled in a fair run (or the exploration fails).
    pub cut: usize,
    pub time: Duration,
    /// The fingerprints of the converged states, sorted.
    pub settled: Vec<u128>,
}

/// A property that does not hold, and how to get there.
pub struct Failure {
    pub what: String,
    pub trace: Vec<Action>,
    pub state: String,
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.what)?;
        writeln!(f, "trace ({} actions):", self.trace.len())?;
        for (i, a) in self.trace.iter().enumerate() {
            writeln!(f, "  {i:3}. {a:?}")?;
        }
        write!(f, "state:\n{}", self.state)
    }
}

/// A 128-bit fingerprint of a state: two multiplicative hash lanes with
/// different constants over the state's `Hash` stream, finished with
/// murmur3's mixer. Cheap in a debug build, where SipHash is not; a false
/// merge of two states needs both lanes to collide.
struct Fingerprint {
    a: u64,
    b: u64,
}

impl Fingerprint {
    fn of(world: &World) -> u128 {
        let mut h = Self {
            a: 0x243f_6a88_85a3_08d3,
            b: 0x1319_8a2e_0370_7344,
        };
        world.hash(&mut h);
        (u128::from(fmix(h.a ^ h.b.rotate_left(32))) << 64) | u128::from(fmix(h.b ^ h.a))
    }

    fn word(&mut self, w: u64) {
        self.a = (self.a.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
        self.b = (self.b ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.b ^= self.b >> 29;
    }
}

fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

impl Hasher for Fingerprint {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        // The length keeps "ab" + "" apart from "a" + "b".
        self.word(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 56));
    }
    fn write_u8(&mut self, i: u8) {
        self.word(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.word(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.word(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.word(i as u64);
    }
    fn finish(&self) -> u64 {
        fmix(self.a)
    }
}

/// The explored graph: every transition, so that traces can be rebuilt
/// shortest-first and the liveness check can run backwards.
#[derive(Default)]
struct Graph {
    converged: Vec<bool>,
    /// States not expanded: their log is past the bound.
    cut: Vec<bool>,
    /// Cut states from which a fair run settled.
    witnessed: Vec<bool>,
    edges: Vec<Edge>,
}

/// One transition.
#[derive(Clone, Copy)]
struct Edge {
    from: u32,
    to: u32,
    action: Action,
}

/// Edges grouped by one end, in compressed rows.
struct Rows {
    start: Vec<u32>,
    edges: Vec<Edge>,
}

impl Rows {
    /// The edges that pass `keep`, grouped by `end` (`from` or `to`).
    fn new(n: usize, edges: &[Edge], keep: impl Fn(&Edge) -> bool, end: fn(&Edge) -> u32) -> Self {
        let mut start = vec![0u32; n + 1];
        for e in edges.iter().filter(|e| keep(e)) {
            start[end(e) as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut grouped = vec![
            edges.first().copied().unwrap_or(Edge {
                from: 0,
                to: 0,
                action: Action::Timeout
            });
            start[n] as usize
        ];
        for e in edges.iter().filter(|e| keep(e)) {
            let at = &mut fill[end(e) as usize];
            grouped[*at as usize] = *e;
            *at += 1;
        }
        Self {
            start,
            edges: grouped,
        }
    }

    fn of(&self, s: usize) -> &[Edge] {
        &self.edges[self.start[s] as usize..self.start[s + 1] as usize]
    }
}

impl Graph {
    fn states(&self) -> usize {
        self.converged.len()
    }

    fn add(&mut self, converged: bool) -> u32 {
        self.converged.push(converged);
        self.cut.push(false);
        self.witnessed.push(false);
        id(self.converged.len() - 1)
    }

    /// The shortest distance of every state from the start, and the edge
    /// that reaches it first.
    fn distances(&self) -> (Vec<u16>, Vec<Option<Edge>>) {
        let n = self.states();
        let out = Rows::new(n, &self.edges, |_| true, |e| e.from);
        let mut depth = vec![u16::MAX; n];
        let mut via = vec![None; n];
        depth[0] = 0;
        let mut queue = VecDeque::from([0usize]);
        while let Some(s) = queue.pop_front() {
            for e in out.of(s) {
                let t = e.to as usize;
                if depth[t] == u16::MAX {
                    depth[t] = depth[s] + 1;
                    via[t] = Some(*e);
                    queue.push_back(t);
                }
            }
        }
        (depth, via)
    }

    /// A shortest action sequence from the start to `target`.
    fn trace(&self, target: u32) -> Vec<Action> {
        let (_, via) = self.distances();
        let mut trace = Vec::new();
        let mut at = target as usize;
        while let Some(e) = via[at] {
            trace.push(e.action);
            at = e.from as usize;
        }
        trace.reverse();
        trace
    }

    /// Whether the system edges form no cycle (Kahn's algorithm).
    fn acyclic(&self) -> bool {
        let n = self.states();
        let out = Rows::new(n, &self.edges, |e| e.action.is_system(), |e| e.from);
        let mut indegree = vec![0u32; n];
        for e in &out.edges {
            indegree[e.to as usize] += 1;
        }
        let mut ready: Vec<usize> = (0..n).filter(|&s| indegree[s] == 0).collect();
        let mut done = 0;
        while let Some(s) = ready.pop() {
            done += 1;
            for e in out.of(s) {
                indegree[e.to as usize] -= 1;
                if indegree[e.to as usize] == 0 {
                    ready.push(e.to as usize);
                }
            }
        }
        done == n
    }

    /// Which states reach one of `targets` through system edges.
    fn reaching(&self, targets: impl Fn(usize) -> bool) -> Vec<bool> {
        let n = self.states();
        let into = Rows::new(n, &self.edges, |e| e.action.is_system(), |e| e.to);
        let mut good: Vec<bool> = (0..n).map(&targets).collect();
        let mut queue: VecDeque<usize> = (0..n).filter(|&s| good[s]).collect();
        while let Some(t) = queue.pop_front() {
            for e in into.of(t) {
                if !good[e.from as usize] {
                    good[e.from as usize] = true;
                    queue.push_back(e.from as usize);
                }
            }
        }
        good
    }
}

fn id(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 2^32 states")
}

/// Whether to explore with [`World::reduced_actions`] or every action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    Reduced,
    Full,
}

/// A state on the depth-first stack and the actions still to take from it.
struct Frame {
    at: u32,
    world: Option<World>,
    actions: Vec<Action>,
}

/// Explores every state reachable from the empty room under `config`,
/// depth first (the stack stays as short as the longest run, where a
/// breadth-first frontier would hold millions of states).
pub fn explore(config: Config, search: Search) -> Result<Report, Box<Failure>> {
    let started = Instant::now();
    let progress = std::env::var_os("MODEL_PROGRESS").is_some();
    let mut graph = Graph::default();
    let mut index: HashMap<u128, u32> = HashMap::new();
    let mut settled = Vec::new();
    let fail = |graph: &Graph, from: u32, action: Option<Action>, what: String, w: &World| {
        let mut trace = graph.trace(from);
        trace.extend(action);
        Box::new(Failure {
            what,
            trace,
            state: w.describe(),
        })
    };

    // Checks a state seen for the first time and makes its frame, or
    // `None` when it is not expanded.
    let enter = |graph: &mut Graph, at: u32, world: World| -> Result<Option<Frame>, Box<Failure>> {
        if world.beyond_bound() {
            // Not expanded; a fair run from here is the witness that it
            // can still settle.
            graph.cut[at as usize] = true;
            match fair_run(world) {
                Ok(run) => graph.witnessed[at as usize] = run.settled,
                Err(failed) => {
                    let (run, v) = *failed;
                    let mut trace = graph.trace(at);
                    trace.extend(run.actions);
                    return Err(Box::new(Failure {
                        what: v.0,
                        trace,
                        state: run.world.describe(),
                    }));
                }
            }
            return Ok(None);
        }
        let mut actions = match search {
            Search::Reduced => world.reduced_actions(),
            Search::Full => world.actions(),
        };
        if actions.is_empty() && !graph.converged[at as usize] {
            let what = "liveness: nothing can happen and the room has not settled".into();
            return Err(fail(graph, at, None, what, &world));
        }
        // Taken from the back.
        actions.reverse();
        Ok(Some(Frame {
            at,
            world: Some(world),
            actions,
        }))
    };

    let root = World::new(config.clone());
    if let Err(v) = root.check() {
        return Err(fail(&graph, 0, None, v.0, &root));
    }
    let fingerprint = Fingerprint::of(&root);
    if root.converged() {
        settled.push(fingerprint);
    }
    let at = graph.add(root.converged());
    index.insert(fingerprint, at);
    let mut stack: Vec<Frame> = enter(&mut graph, at, root)?.into_iter().collect();
    while let Some(frame) = stack.last_mut() {
        let Some(action) = frame.actions.pop() else {
            stack.pop();
            continue;
        };
        let at = frame.at;
        // The last action takes the state itself: one copy fewer, and the
        // only one when the reduction picked a single action.
        let mut next = if frame.actions.is_empty() {
            frame.world.take().expect("taken only at the last action")
        } else {
            frame.world.clone().expect("taken only at the last action")
        };
        if let Err(v) = next.step(action) {
            return Err(fail(&graph, at, Some(action), v.0, &next));
        }
        let fingerprint = Fingerprint::of(&next);
        let to = match index.entry(fingerprint) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                if let Err(v) = next.check() {
                    return Err(fail(&graph, at, Some(action), v.0, &next));
                }
                let converged = next.converged();
                if converged {
                    settled.push(fingerprint);
                }
                let to = graph.add(converged);
                e.insert(to);
                graph.edges.push(Edge {
                    from: at,
                    to,
                    action,
                });
                if let Some(frame) = enter(&mut graph, to, next)? {
                    stack.push(frame);
                }
                if progress && to % 1_000_000 == 0 {
                    eprintln!(
                        "  {to} states, stack {}, {:.0?}",
                        stack.len(),
                        started.elapsed()
                    );
                }
                continue;
            }
        };
        graph.edges.push(Edge {
            from: at,
            to,
            action,
        });
    }

    if !graph.acyclic() {
        // Environment actions spend a budget, so only system actions could
        // close a cycle; the reduction is sound only without one.
        return Err(Box::new(Failure {
            what: "the system actions' graph has a cycle: the reduction is unsound".into(),
            trace: Vec::new(),
            state: String::new(),
        }));
    }
    let settles = graph.reaching(|s| graph.converged[s] || graph.witnessed[s]);
    let may_settle = graph.reaching(|s| graph.converged[s] || graph.cut[s]);
    let stuck = may_settle.iter().position(|&ok| !ok).map(|s| {
        (
            s,
            "liveness: from here no converged state is reachable by system actions",
        )
    });
    let unshown = settles.iter().position(|&ok| !ok).map(|s| {
        (
            s,
            "liveness: from here no converged state is reachable within the log bound",
        )
    });
    if let Some((s, what)) = stuck.or(unshown) {
        let trace = graph.trace(id(s));
        // Rebuild the state from its trace for the report.
        let mut world = World::new(config);
        for &a in &trace {
            let _ = world.step(a);
        }
        return Err(Box::new(Failure {
            what: what.into(),
            trace,
            state: world.describe(),
        }));
    }
    let (depth, _) = graph.distances();
    settled.sort_unstable();
    Ok(Report {
        states: graph.states(),
        transitions: graph.edges.len(),
        max_depth: depth.iter().copied().max().unwrap_or(0),
        converged: graph.converged.iter().filter(|&&c| c).count(),
        cut: graph.cut.iter().filter(|&&c| c).count(),
        time: started.elapsed(),
        settled,
    })
}

/// A run of system actions only, from a state the exploration did not
/// expand.
struct FairRun {
    world: World,
    actions: Vec<Action>,
    settled: bool,
}

/// Runs system actions fairly until the room settles (or 10 000 steps):
/// a dead connection is noticed and a closed one closes first, deliveries
/// take turns, and timers fire only when nothing else can happen.
/// Invariants are checked on the way.
fn fair_run(mut world: World) -> Result<FairRun, Box<(FairRun, Violation)>> {
    let mut actions = Vec::new();
    for turn in 0..10_000usize {
        if world.converged() {
            return Ok(FairRun {
                world,
                actions,
                settled: true,
            });
        }
        let enabled: Vec<Action> = world
            .actions()
            .into_iter()
            .filter(|a| a.is_system())
            .collect();
        let prompt = enabled
            .iter()
            .find(|a| matches!(a, Action::Detect(_) | Action::Close(_)));
        let moving: Vec<&Action> = enabled
            .iter()
            .filter(|a| !matches!(a, Action::Timeout | Action::Tick(_)))
            .collect();
        let Some(&action) = prompt
            .or_else(|| moving.get(turn % moving.len().max(1)).copied())
            .or(enabled.first())
        else {
            break;
        };
        actions.push(action);
        if let Err(v) = world.step(action).and_then(|()| world.check()) {
            return Err(Box::new((
                FairRun {
                    world,
                    actions,
                    settled: false,
                },
                v,
            )));
        }
    }
    let settled = world.converged();
    Ok(FairRun {
        world,
        actions,
        settled,
    })
}
