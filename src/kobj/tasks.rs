//! Every thread of the kernel, from `init_task`: the thread-group leaders on the `tasks` list, and
//! each leader's threads on `signal->thread_head` (linked by `thread_node`, 3.14+) or, where the
//! kernel has no `thread_head`, on `thread_group`. Layouts come from [`KernelTypes`].

use super::roots::{list_offsets, walk_list, MAX_LIST_ENTRIES};
use super::KernelTypes;
use crate::error::Result;
use crate::kview::{bad_virt, VirtMemory};

/// One thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub pid: i32,
    pub tgid: i32,
    /// `real_parent->tgid` (0 for init_task and the kernel's first threads, as ps shows).
    pub ppid: i32,
    /// `comm` up to its NUL (bytes; normally ASCII).
    pub comm: Vec<u8>,
    /// One letter of "RSDTtXZPI", as ps and the kernel's `task_state_index` give it.
    pub state: char,
    pub cpu: u32,
    pub on_cpu: bool,
    /// `PF_KTHREAD` in `flags`.
    pub is_kthread: bool,
    /// The task_struct's address.
    pub address: u64,
}

pub const PF_KTHREAD: u64 = 0x0020_0000;
const TASK_REPORT: u32 = 0x7f;
const TASK_UNINTERRUPTIBLE: u32 = 0x2;
const TASK_NOLOAD: u32 = 0x400;
const TASK_IDLE: u32 = TASK_UNINTERRUPTIBLE | TASK_NOLOAD;
const TASK_REPORT_IDLE: u32 = TASK_REPORT + 1;
const TASK_RTLOCK_WAIT: u32 = 0x1000;
const STATE_LETTERS: &[u8; 9] = b"RSDTtXZPI";

/// The state letter of a task from its `__state` (or `state`) and `exit_state`, as the kernel's
/// `__task_state_index` and `task_state_array` give it.
pub fn state_letter(state: u32, exit_state: u32) -> char {
    let mut s = (state | exit_state) & TASK_REPORT;
    if state & TASK_IDLE == TASK_IDLE {
        s = TASK_REPORT_IDLE;
    }
    if state & TASK_RTLOCK_WAIT != 0 {
        s = TASK_UNINTERRUPTIBLE;
    }
    // fls: 0 for 0, else the 1-based index of the highest set bit.
    let idx = (32 - s.leading_zeros()) as usize;
    char::from(STATE_LETTERS[idx.min(STATE_LETTERS.len() - 1)])
}

/// Where the threads of a group are linked.
#[derive(Debug, Clone, Copy)]
enum Threads {
    /// `task->signal->thread_head`, entries by `task->thread_node` (the leader included).
    SignalHead { signal: u64, thread_head: u64, thread_node: u64 },
    /// `task->thread_group`, a ring through the group's tasks (the leader included, no head).
    Group { thread_group: u64 },
}

/// The offsets of `struct task_struct` the walk reads.
#[derive(Debug, Clone)]
pub struct TaskLayout {
    tasks: u64,
    pid: u64,
    tgid: u64,
    real_parent: u64,
    comm: u64,
    comm_len: usize,
    state: u64,
    state_size: u64,
    exit_state: u64,
    flags: u64,
    flags_size: u64,
    cpu: Option<u64>,
    on_cpu: Option<u64>,
    threads: Threads,
    next: u64,
    prev: u64,
}

const TS: &str = "struct task_struct";

impl TaskLayout {
    pub fn new(types: &dyn KernelTypes) -> Result<TaskLayout> {
        let state_path = if types.has_member(TS, "__state") { "__state" } else { "state" };
        let threads = if types.has_member("struct signal_struct", "thread_head") && types.has_member(TS, "thread_node") {
            Threads::SignalHead {
                signal: types.offset_of(TS, "signal")?,
                thread_head: types.offset_of("struct signal_struct", "thread_head")?,
                thread_node: types.offset_of(TS, "thread_node")?,
            }
        } else {
            Threads::Group { thread_group: types.offset_of(TS, "thread_group")? }
        };
        let cpu = if types.has_member(TS, "thread_info.cpu") {
            Some(types.offset_of(TS, "thread_info.cpu")?)
        } else if types.has_member(TS, "cpu") {
            Some(types.offset_of(TS, "cpu")?)
        } else {
            None
        };
        let (next, prev) = list_offsets(types)?;
        Ok(TaskLayout {
            tasks: types.offset_of(TS, "tasks")?,
            pid: types.offset_of(TS, "pid")?,
            tgid: types.offset_of(TS, "tgid")?,
            real_parent: types.offset_of(TS, "real_parent")?,
            comm: types.offset_of(TS, "comm")?,
            comm_len: types.member_size(TS, "comm")?.clamp(1, 64) as usize,
            state: types.offset_of(TS, state_path)?,
            state_size: types.member_size(TS, state_path)?,
            exit_state: types.offset_of(TS, "exit_state")?,
            flags: types.offset_of(TS, "flags")?,
            flags_size: types.member_size(TS, "flags")?,
            cpu,
            on_cpu: types.has_member(TS, "on_cpu").then(|| types.offset_of(TS, "on_cpu")).transpose()?,
            threads,
            next,
            prev,
        })
    }

    /// Read the task at `addr`; a comm without its NUL is an error naming the task.
    pub fn read(&self, mem: &dyn VirtMemory, addr: u64) -> Result<Task> {
        let at = |e: crate::error::Error| {
            let mut e = e;
            e.message = format!("task_struct at {addr:#x}: {}", e.message);
            e
        };
        let pid = mem.read_u32(addr + self.pid).map_err(at)? as i32;
        let tgid = mem.read_u32(addr + self.tgid).map_err(at)? as i32;
        let parent = mem.read_ptr(addr + self.real_parent).map_err(at)?;
        let ppid = if parent == 0 { 0 } else { mem.read_u32(parent + self.tgid).map_err(at)? as i32 };
        let mut comm = [0u8; 64];
        let comm = &mut comm[..self.comm_len];
        mem.read_virt(addr + self.comm, comm).map_err(at)?;
        let end = comm
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad_virt(addr, format!("task_struct at {addr:#x}: comm has no NUL in its {} bytes", self.comm_len)))?;
        let state = read_uint(mem, addr + self.state, self.state_size).map_err(at)? as u32;
        let exit_state = mem.read_u32(addr + self.exit_state).map_err(at)?;
        let flags = read_uint(mem, addr + self.flags, self.flags_size).map_err(at)?;
        let cpu = match self.cpu {
            Some(o) => mem.read_u32(addr + o).map_err(at)?,
            None => 0,
        };
        let on_cpu = match self.on_cpu {
            Some(o) => mem.read_u32(addr + o).map_err(at)? != 0,
            None => false,
        };
        Ok(Task {
            pid,
            tgid,
            ppid,
            comm: comm[..end].to_vec(),
            state: state_letter(state, exit_state),
            cpu,
            on_cpu,
            is_kthread: flags & PF_KTHREAD != 0,
            address: addr,
        })
    }
}

fn read_uint(mem: &dyn VirtMemory, addr: u64, size: u64) -> Result<u64> {
    Ok(match size {
        1 => {
            let mut b = [0u8];
            mem.read_virt(addr, &mut b)?;
            u64::from(b[0])
        }
        2 => u64::from(mem.read_u16(addr)?),
        4 => u64::from(mem.read_u32(addr)?),
        _ => mem.read_u64(addr)?,
    })
}

/// Every thread: each thread-group leader of the `tasks` list from `init_task` (itself first), then
/// its other threads, as drgn's `for_each_task` orders them. At most `limit` threads in all.
pub fn tasks(mem: &dyn VirtMemory, types: &dyn KernelTypes, init_task: u64, limit: usize) -> Result<Vec<Task>> {
    let l = TaskLayout::new(types)?;
    let mut out = Vec::new();
    let mut leaders = vec![init_task];
    walk_list(mem, init_task + l.tasks, l.next, l.prev, limit.min(MAX_LIST_ENTRIES), "task_struct.tasks", |node| {
        leaders.push(node - l.tasks);
        Ok(())
    })?;
    for leader in leaders {
        threads_of(mem, &l, leader, limit, &mut out)?;
    }
    Ok(out)
}

fn threads_of(mem: &dyn VirtMemory, l: &TaskLayout, leader: u64, limit: usize, out: &mut Vec<Task>) -> Result<()> {
    let push = |out: &mut Vec<Task>, t: u64| -> Result<()> {
        if out.len() >= limit {
            return Err(crate::kview::too_big_virt(t, format!("more than {limit} threads (at the task_struct at {t:#x})")));
        }
        out.push(l.read(mem, t)?);
        Ok(())
    };
    match l.threads {
        Threads::SignalHead { signal, thread_head, thread_node } => {
            let sig = mem.read_ptr(leader + signal)?;
            if sig == 0 {
                // A task being torn down has no signal_struct: it is its own only thread.
                return push(out, leader);
            }
            let mut saw_leader = false;
            let mut group = Vec::new();
            walk_list(mem, sig + thread_head, l.next, l.prev, limit, "signal_struct.thread_head", |node| {
                let t = node - thread_node;
                saw_leader |= t == leader;
                group.push(t);
                Ok(())
            })?;
            if !saw_leader {
                // A leader that has exited (a zombie leader) has left the thread list: list it first.
                push(out, leader)?;
            }
            // The leader first, then the others in list order.
            group.sort_by_key(|&t| t != leader);
            for t in group {
                push(out, t)?;
            }
        }
        Threads::Group { thread_group } => {
            push(out, leader)?;
            walk_list(mem, leader + thread_group, l.next, l.prev, limit, "task_struct.thread_group", |node| {
                push(out, node - thread_group)
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::kobj::roots::fake::*;
    use crate::kview::testmem::FakeMem;

    #[test]
    fn state_letters_match_the_kernel() {
        assert_eq!(state_letter(0, 0), 'R');
        assert_eq!(state_letter(1, 0), 'S');
        assert_eq!(state_letter(2, 0), 'D');
        assert_eq!(state_letter(4, 0), 'T');
        assert_eq!(state_letter(8, 0), 't');
        assert_eq!(state_letter(0, 0x10), 'X');
        assert_eq!(state_letter(0, 0x20), 'Z');
        assert_eq!(state_letter(0x40, 0), 'P');
        assert_eq!(state_letter(TASK_IDLE, 0), 'I');
        assert_eq!(state_letter(TASK_IDLE | 0x2000, 0), 'I'); // TASK_FREEZABLE does not hide I
        assert_eq!(state_letter(TASK_RTLOCK_WAIT, 0), 'D');
        assert_eq!(state_letter(0x100 | 2, 0), 'D'); // TASK_KILLABLE
    }

    pub(crate) const TASKS: u64 = 0x10;
    pub(crate) const THREAD_NODE: u64 = 0x80;
    pub(crate) const THREAD_GROUP: u64 = 0x90;

    pub(crate) fn types(signal_head: bool) -> FakeTypes {
        let mut t = FakeTypes::default();
        list_types(&mut t);
        t.member(TS, "tasks", TASKS, 16)
            .member(TS, "pid", 0x20, 4)
            .member(TS, "tgid", 0x24, 4)
            .member(TS, "real_parent", 0x28, 8)
            .member(TS, "comm", 0x40, 16)
            .member(TS, "__state", 0x04, 4)
            .member(TS, "exit_state", 0x30, 4)
            .member(TS, "flags", 0x34, 4)
            .member(TS, "thread_info.cpu", 0x08, 4)
            .member(TS, "on_cpu", 0x0c, 4)
            .member(TS, "signal", 0x70, 8);
        if signal_head {
            t.member(TS, "thread_node", THREAD_NODE, 16).member("struct signal_struct", "thread_head", 0x10, 16);
        } else {
            t.member(TS, "thread_group", THREAD_GROUP, 16);
        }
        t
    }

    pub(crate) fn link(m: &FakeMem, nodes: &[u64]) {
        for (i, &n) in nodes.iter().enumerate() {
            m.w64(n, nodes[(i + 1) % nodes.len()]);
            m.w64(n + 8, nodes[(i + nodes.len() - 1) % nodes.len()]);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn task(m: &FakeMem, a: u64, pid: u32, tgid: u32, parent: u64, comm: &[u8], state: u32, flags: u32) {
        m.w32(a + 0x20, pid);
        m.w32(a + 0x24, tgid);
        m.w64(a + 0x28, parent);
        let mut c = [0u8; 16];
        c[..comm.len()].copy_from_slice(comm);
        m.write(a + 0x40, &c);
        m.w32(a + 0x04, state);
        m.w32(a + 0x34, flags);
        m.w32(a + 0x08, pid % 2);
    }

    /// init (0x1000), kthreadd-like (0x2000), a process (0x3000) with a second thread (0x4000).
    fn build(m: &FakeMem, signal_head: bool) {
        task(m, 0x1000, 0, 0, 0x1000, b"swapper/0", 0, PF_KTHREAD as u32);
        task(m, 0x2000, 2, 2, 0x1000, b"kthreadd", 1, PF_KTHREAD as u32);
        task(m, 0x3000, 100, 100, 0x2000, b"sshd", 1, 0);
        task(m, 0x4000, 101, 100, 0x2000, b"worker", 2, 0);
        link(m, &[0x1000 + TASKS, 0x2000 + TASKS, 0x3000 + TASKS]);
        if signal_head {
            for (t, sig) in [(0x1000u64, 0x9000u64), (0x2000, 0xa000), (0x3000, 0xb000), (0x4000, 0xb000)] {
                m.w64(t + 0x70, sig);
            }
            link(m, &[0x9000 + 0x10, 0x1000 + THREAD_NODE]);
            link(m, &[0xa000 + 0x10, 0x2000 + THREAD_NODE]);
            link(m, &[0xb000 + 0x10, 0x3000 + THREAD_NODE, 0x4000 + THREAD_NODE]);
        } else {
            for t in [0x1000u64, 0x2000] {
                link(m, &[t + THREAD_GROUP]);
            }
            link(m, &[0x3000 + THREAD_GROUP, 0x4000 + THREAD_GROUP]);
        }
    }

    #[test]
    fn threads_through_either_list() {
        for signal_head in [true, false] {
            let m = FakeMem::default();
            build(&m, signal_head);
            let ts = tasks(&Flat(&m), &types(signal_head), 0x1000, 100).unwrap();
            #[allow(clippy::type_complexity)]
            let got: Vec<(i32, i32, i32, &[u8], char, bool)> =
                ts.iter().map(|t| (t.pid, t.tgid, t.ppid, &t.comm[..], t.state, t.is_kthread)).collect();
            assert_eq!(
                got,
                [
                    (0, 0, 0, &b"swapper/0"[..], 'R', true),
                    (2, 2, 0, &b"kthreadd"[..], 'S', true),
                    (100, 100, 2, &b"sshd"[..], 'S', false),
                    (101, 100, 2, &b"worker"[..], 'D', false),
                ],
                "signal_head={signal_head}"
            );
            assert_eq!(ts[3].cpu, 1);
            assert_eq!(ts[3].address, 0x4000);
        }
    }

    #[test]
    fn bad_comm_and_bad_lists_are_errors_naming_the_address() {
        let m = FakeMem::default();
        build(&m, true);
        m.write(0x3000 + 0x40, b"0123456789abcdef"); // no NUL
        let e = tasks(&Flat(&m), &types(true), 0x1000, 100).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Format);
        assert!(e.message.contains("0x3000") && e.message.contains("comm"), "{}", e.message);

        let m = FakeMem::default();
        build(&m, true);
        // The tasks list loops back to the second entry without returning to init_task.
        m.w64(0x3000 + TASKS, 0x2000 + TASKS);
        let e = tasks(&Flat(&m), &types(true), 0x1000, 100).unwrap_err();
        assert!(e.message.contains("0x2010"), "{}", e.message);

        let m = FakeMem::default();
        build(&m, true);
        let e = tasks(&Flat(&m), &types(true), 0x1000, 3).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Limit);
    }
}
