"""Limits and isolation that the model worker applies to itself before it reads any request.

The worker applies them at the top of its own ``main`` rather than in a ``preexec_fn`` (unsafe
in a parent with threads), with the standard library only and before numpy starts any thread, so
the same code runs under another interpreter. Every step is probed; what is in force is reported
as plain strings, and each step that is unavailable adds a warning instead of failing.

Isolation levels:

``process``
    A child process in its own session (so a kill reaches every process it starts), killed if
    the gate dies (``PR_SET_PDEATHSIG``), first in line for the kernel's OOM killer
    (``oom_score_adj`` 1000, so the gate survives a machine running out of memory), under
    resource limits.
``sandbox`` (default)
    The same, plus on Linux the mechanisms below.

Why these mechanisms (Linux):

* **seccomp-bpf** needs no privilege and no namespace, only ``no_new_privs``, so it works
  unprivileged on a GitHub-hosted Ubuntu 24.04 runner, where AppArmor restricts unprivileged user
  namespaces, and as root in a container. The filter refuses ``socket()`` (network off, for every
  address family: no TCP/UDP, no raw or netlink sockets, no Unix sockets such as a mounted
  ``docker.sock``), ``io_uring`` (which could open sockets behind seccomp's back), ``ptrace`` and
  ``process_vm_*``, ``setsid``/``setpgid`` (every process the model starts stays in the
  worker's process group, so the gate's kill reaches all of them), signals aimed at the gate or
  its ancestors (``kill(-1)`` and process-group kills included), module loading, mounts,
  ``setns``, the keyring, ``bpf`` and ``userfaultfd``; syscalls of a foreign ABI (x32, i386) are
  refused wholesale. x86_64 and aarch64 only.
* **Landlock** (Linux 5.13+, enabled by default on Ubuntu 22.04+, Debian, Fedora) is an
  unprivileged LSM: writes (create, write, truncate, remove, rename, link, mknod) are confined to
  the worker's scratch folder and ``/dev/null``; reads and execution stay allowed so the
  interpreter and libraries load. From ABI 4 TCP connect/bind are refused as a second network
  layer; from ABI 6 signals and abstract Unix sockets are scoped to the worker. Landlock also
  stops the worker from ptracing (or writing the ``/proc/<pid>/mem`` of) the gate.
* **User + network namespace** (``unshare(CLONE_NEWUSER | CLONE_NEWNET)`` through libc, as
  ``os.unshare`` needs Python 3.12): a third network layer (only a down loopback), and as root it
  confines root's capabilities to the namespace (root cannot raise its limits back, mount, load
  modules or change the host network). It is probed in a throwaway fork first, because on Ubuntu
  24.04 the ``unshare`` can succeed and the uid map then be refused, which would leave the
  process with an unmapped uid that cannot create files. Where it fails the two layers above
  still hold. bubblewrap is not needed: it would only add a mount and PID namespace, and
  seccomp and Landlock already cover writes, network, signals and ptrace without any setuid
  helper or AppArmor profile.

Limits (``setrlimit``, every POSIX): address space (``RLIMIT_AS``), CPU seconds (SIGXCPU, then
SIGKILL five seconds later), file size (Python ignores SIGXFSZ, so a write past it raises
``OSError: File too large``), no core files, and processes. ``RLIMIT_NPROC`` counts every
process and thread of the real uid, and root is exempt from it. So: inside a fresh user namespace
the count starts at zero and the limit means "this many"; without one it is set to the user's
current count plus the allowance; as root, where it cannot work, the sandbox refuses new
processes altogether (threads are still allowed) and ``process`` isolation leaves them unlimited,
both saying so.

The default memory limit is 4 GiB of address space, or half the physical memory when that is
less: a fixed figure, so a model that passes on a laptop passes on a CI runner, that stops a
runaway allocation (a 20 GB array fails with ``MemoryError`` on a 24 GB machine) without
starving legitimate models. Address space counts more than resident memory (thread stacks,
allocator arenas, BLAS buffers, mapped files), which is why it is not tighter.

What this does not do: reads are not confined (the model can read any file the gate's user can,
including credentials on disk; with the network off it can only leak them through its outputs),
and the model can still use all CPU cores and the memory under its limit.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import signal
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "ISOLATION_LEVELS",
    "GiB",
    "Protections",
    "WorkerLimits",
    "apply",
    "default_memory_limit",
    "format_bytes",
]

GiB = 1 << 30
MiB = 1 << 20
ISOLATION_LEVELS = ("sandbox", "process")


def physical_memory() -> int | None:
    """Physical memory in bytes, where the OS says."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def default_memory_limit() -> int:
    """4 GiB of address space, or half the physical memory when that is less."""
    ram = physical_memory()
    return min(4 * GiB, ram // 2) if ram else 4 * GiB


def format_bytes(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / MiB:.0f} MiB"


@dataclass(frozen=True)
class WorkerLimits:
    """Resource limits of the model process; None leaves one unlimited."""

    memory_bytes: int | None = field(default_factory=default_memory_limit)
    cpu_seconds: int | None = 3600
    file_size_bytes: int | None = GiB
    #: Processes and threads the model may add (see the module docstring for root).
    processes: int | None = 64

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "cpu_seconds", "file_size_bytes", "processes"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"worker limit {name} must be a positive integer or None")

    def to_data(self) -> dict[str, int | None]:
        return {
            "memory_bytes": self.memory_bytes,
            "cpu_seconds": self.cpu_seconds,
            "file_size_bytes": self.file_size_bytes,
            "processes": self.processes,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, object]) -> WorkerLimits:
        def get(name: str) -> int | None:
            value = data.get(name)
            return value if isinstance(value, int) else None

        return cls(
            memory_bytes=get("memory_bytes"),
            cpu_seconds=get("cpu_seconds"),
            file_size_bytes=get("file_size_bytes"),
            processes=get("processes"),
        )


@dataclass(frozen=True)
class Protections:
    """What is in force in the worker (``"network off"``, ...) and what could not be applied."""

    in_force: tuple[str, ...]
    warnings: tuple[str, ...]


def apply(isolation: str, limits: WorkerLimits, scratch: str, *, gate_pid: int) -> Protections:
    """Isolate and limit the calling process, which must still be single-threaded."""
    if isolation not in ISOLATION_LEVELS:
        raise ValueError(f"unknown isolation {isolation!r}: expected one of {ISOLATION_LEVELS}")
    done: list[str] = ["process isolated"]
    warnings: list[str] = []
    linux = sys.platform.startswith("linux")
    if linux:
        _die_with_parent(gate_pid)
        if _oom_first():
            done.append("first in line for the OOM killer")
    root = os.geteuid() == 0
    userns = False
    if isolation == "sandbox" and not linux:
        warnings.append(
            f"no sandbox on {platform.system()}: the model process has the network and can "
            "write files; process isolation and limits only"
        )
    elif isolation == "sandbox":
        userns, note = _enter_namespaces()
        if note:
            warnings.append(note)
    deny_processes = isolation == "sandbox" and linux and root and limits.processes is not None
    _apply_limits(limits, done, warnings, userns=userns, root=root, deny_processes=deny_processes)
    if isolation == "sandbox" and linux:
        if _prctl(_PR_SET_NO_NEW_PRIVS, 1) == 0:
            done.append("no privilege gain (setuid, sudo)")
        else:  # pragma: no cover - every kernel since 3.5
            warnings.append("no_new_privs unavailable: Landlock and seccomp cannot be applied")
            return Protections(tuple(done), tuple(warnings))
        landlock_abi, note = _landlock(scratch)
        if landlock_abi:
            done.append(f"writes confined to {scratch}")
        else:
            warnings.append(f"writes not confined: {note}")
        filtered, note = _seccomp(
            _ancestors(gate_pid), deny_processes=deny_processes, deny_rlimits=root and not userns
        )
        if not filtered:
            warnings.append(f"no seccomp filter: {note}")
        if filtered or landlock_abi >= 6:
            done.append("gate process shielded from signals and ptrace")
        if deny_processes:
            if filtered:
                done.append("no new processes")
            else:
                warnings.append(
                    "processes not limited: running as root, which RLIMIT_NPROC exempts"
                )
        if userns or filtered:
            done.append("network off")
        elif landlock_abi >= 4:
            done.append("TCP off")
            warnings.append("network only partly isolated: TCP refused by Landlock, UDP open")
        else:
            warnings.append("network not isolated: no mechanism available")
    order = (
        "process isolated",
        "network off",
        "TCP off",
        "writes confined",
        "memory",
        "cpu",
        "file size",
        "processes",
        "no new processes",
    )
    done.sort(key=lambda item: next((i for i, p in enumerate(order) if item.startswith(p)), 99))
    return Protections(tuple(done), tuple(warnings))


# -- process lifetime ----------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def _prctl(option: int, arg: int) -> int:
    result: int = _lib().prctl(option, ctypes.c_ulong(arg), 0, 0, 0)
    return result


def _die_with_parent(gate_pid: int) -> None:
    # The kernel kills the worker when the gate dies; if it died before this line, exit now.
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != gate_pid:
        os._exit(70)


def _oom_first() -> bool:
    # Should memory still run out (several workers, a limit above free memory), the kernel's OOM
    # killer takes the model rather than the gate or anything else on the machine.
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        return False
    return True


def _ancestors(pid: int) -> list[int]:
    """``pid`` and its ancestors up to init: the processes the model must not signal."""
    chain: list[int] = []
    while pid > 1 and len(chain) < 32:
        chain.append(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            pid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return chain


# -- namespaces ----------------------------------------------------------------------------------

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000


def _unshare_and_map() -> None:
    uid, gid = os.geteuid(), os.getegid()
    if _lib().unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unshare(CLONE_NEWUSER|CLONE_NEWNET): {os.strerror(code)}")
    # The same ids inside as outside, so files keep their owners and the scratch stays writable.
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{uid} {uid} 1"),
        ("gid_map", f"{gid} {gid} 1"),
    ):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _enter_namespaces() -> tuple[bool, str]:
    """Enter a new user and network namespace if a throwaway fork shows that it works."""
    try:
        pid = os.fork()
    except OSError as exc:  # pragma: no cover - fork refused
        return False, f"network namespace not probed: {exc}"
    if pid == 0:  # pragma: no cover - runs in the probe child
        code = 0
        try:
            _unshare_and_map()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        return False, ""  # seccomp and Landlock still take the network away
    try:
        _unshare_and_map()
    except OSError as exc:  # pragma: no cover - the probe said it works
        return False, f"network namespace failed after a successful probe: {exc}"
    return True, ""


# -- resource limits -----------------------------------------------------------------------------


def _set_limit(kind: int, soft: int, hard: int | None = None) -> int:
    """Lower a limit (never raise it past the current hard limit); return the soft value set."""
    _, cur_hard = resource.getrlimit(kind)
    hard = soft if hard is None else hard
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    resource.setrlimit(kind, (soft, hard))
    return soft


def _user_tasks(uid: int) -> int:
    """Processes and threads whose real uid is ``uid`` (what RLIMIT_NPROC counts)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as f:
                status = f.read()
        except OSError:
            continue
        real_uid = threads = None
        for line in status.splitlines():
            if line.startswith(b"Uid:"):
                real_uid = int(line.split()[1])
            elif line.startswith(b"Threads:"):
                threads = int(line.split()[1])
        if real_uid == uid and threads:
            total += threads
    return total


def _apply_limits(
    limits: WorkerLimits,
    done: list[str],
    warnings: list[str],
    *,
    userns: bool,
    root: bool,
    deny_processes: bool,
) -> None:
    _set_limit(resource.RLIMIT_CORE, 0)
    if limits.memory_bytes is not None:
        done.append(f"memory {format_bytes(_set_limit(resource.RLIMIT_AS, limits.memory_bytes))}")
    if limits.cpu_seconds is not None:
        cpu = limits.cpu_seconds
        done.append(f"cpu {_set_limit(resource.RLIMIT_CPU, cpu, cpu + 5)} s")
    if limits.file_size_bytes is not None:
        size = _set_limit(resource.RLIMIT_FSIZE, limits.file_size_bytes)
        done.append(f"file size {format_bytes(size)}")
    if limits.processes is None:
        return
    if deny_processes:
        pass  # the seccomp filter refuses new processes; ``apply`` reports it
    elif root:
        warnings.append("processes not limited: running as root, which RLIMIT_NPROC exempts")
    elif sys.platform.startswith("linux"):
        base = 1 if userns else _user_tasks(os.getuid())
        _set_limit(resource.RLIMIT_NPROC, base + limits.processes)
        done.append(f"processes {limits.processes}")
    else:  # pragma: no cover - macOS counts per user as well
        _set_limit(resource.RLIMIT_NPROC, limits.processes)
        done.append(f"processes {limits.processes} (per user)")


# -- Landlock ------------------------------------------------------------------------------------

_SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on x86_64 and the generic table
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_FS_WRITE_FILE = 1 << 1
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_ALL = sum(1 << bit for bit in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_NET_ALL_TCP = (1 << 0) | (1 << 1)  # bind, connect; ABI 4
_SCOPE_ALL = (1 << 0) | (1 << 1)  # abstract unix sockets, signals; ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [
        ("allowed_access", ctypes.c_uint64),
        ("parent_fd", ctypes.c_int32),
    ]


def _landlock(scratch: str) -> tuple[int, str]:
    """Confine writes to ``scratch``; return the ABI version in force (0 if none) and why not."""
    libc = _lib()
    abi = int(libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION))
    if abi < 1:
        code = ctypes.get_errno()
        why = {
            errno.ENOSYS: "this kernel has no Landlock (Linux 5.13+)",
            errno.EOPNOTSUPP: "Landlock is disabled at boot (add it to the lsm= list)",
        }.get(code, f"Landlock unavailable ({os.strerror(code)})")
        return 0, why
    writes = _FS_WRITE_FILE | _FS_REMOVE_DIR | _FS_REMOVE_FILE | _FS_MAKE_ALL
    if abi >= 2:
        writes |= _FS_REFER
    if abi >= 3:
        writes |= _FS_TRUNCATE
    attr = _RulesetAttr(writes, _NET_ALL_TCP if abi >= 4 else 0, _SCOPE_ALL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = int(libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0))
    if ruleset < 0:
        return 0, f"landlock_create_ruleset failed ({os.strerror(ctypes.get_errno())})"
    try:
        file_writes = _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
        for path, allowed in ((scratch, writes), (os.devnull, file_writes)):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(allowed, fd)
                if (
                    libc.syscall(
                        _SYS_LANDLOCK_ADD_RULE,
                        ruleset,
                        _LANDLOCK_RULE_PATH_BENEATH,
                        ctypes.byref(rule),
                        0,
                    )
                    != 0
                ):
                    return (
                        0,
                        f"landlock_add_rule({path}) failed ({os.strerror(ctypes.get_errno())})",
                    )
            finally:
                os.close(fd)
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            return 0, f"landlock_restrict_self failed ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(ruleset)
    return abi, ""


# -- seccomp -------------------------------------------------------------------------------------

_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}
_CLONE_THREAD = 0x00010000

# name: (x86_64, aarch64); None where the ABI has no such syscall.
_SYSCALLS: dict[str, tuple[int | None, int | None]] = {
    "socket": (41, 198),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "setsid": (112, 157),
    "setpgid": (109, 154),
    "setns": (308, 268),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "reboot": (169, 142),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "userfaultfd": (323, 282),
    "open_by_handle_at": (304, 265),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "kill": (62, 129),
    "tkill": (200, 130),
    "tgkill": (234, 131),
    "rt_sigqueueinfo": (129, 138),
    "rt_tgsigqueueinfo": (297, 240),
    "pidfd_open": (434, 434),
    "clone": (56, 220),
    "clone3": (435, 435),
    "fork": (57, None),
    "vfork": (58, None),
    "setrlimit": (160, 164),
    "prlimit64": (302, 261),
}
_DENIED = [
    "socket",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "setsid",
    "setpgid",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "reboot",
    "swapon",
    "swapoff",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "open_by_handle_at",
]
_UNSUPPORTED = ("io_uring_setup", "io_uring_enter", "io_uring_register")
_SIGNALLING = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open")

_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def _filter_program(
    arch: str, protected: list[int], *, deny_processes: bool, deny_rlimits: bool
) -> bytes:
    """The BPF program: a flat list of "this syscall -> this answer" blocks, allow otherwise."""
    index = 0 if arch == "x86_64" else 1
    nr = {name: numbers[index] for name, numbers in _SYSCALLS.items()}
    eperm = _SECCOMP_RET_ERRNO | errno.EPERM
    enosys = _SECCOMP_RET_ERRNO | errno.ENOSYS
    arg0_low = 16  # offsetof(struct seccomp_data, args[0]), little-endian low word
    prog = [
        _insn(_LD_W_ABS, 4),  # arch
        _insn(_JEQ_K, _AUDIT_ARCH[arch], 1, 0),
        _insn(_RET_K, enosys),  # a foreign ABI (i386 via int 0x80 and the like)
        _insn(_LD_W_ABS, 0),  # syscall number
    ]
    if arch == "x86_64":
        prog += [_insn(_JGE_K, 0x40000000, 0, 1), _insn(_RET_K, enosys)]  # x32

    def deny(number: int | None, answer: int) -> None:
        if number is not None:
            prog.extend((_insn(_JEQ_K, number, 0, 1), _insn(_RET_K, answer)))

    def guarded(number: int | None, checks: list[bytes], offset: int = arg0_low) -> None:
        # if nr == number: load an argument word, run checks (each may return), else allow
        if number is None:
            return
        block = [_insn(_LD_W_ABS, offset), *checks, _insn(_RET_K, _SECCOMP_RET_ALLOW)]
        prog.append(_insn(_JEQ_K, number, 0, len(block)))
        prog.extend(block)

    for name in _DENIED:
        deny(nr[name], _SECCOMP_RET_ERRNO | (errno.EACCES if name == "socket" else errno.EPERM))
    for name in _UNSUPPORTED:
        deny(nr[name], enosys)
    # A negative pid is a process group (or -1: everyone); the gate and its ancestors by pid.
    signal_checks = [_insn(_JSET_K, 0x80000000, 0, 1), _insn(_RET_K, eperm)]
    for pid in protected:
        signal_checks += [_insn(_JEQ_K, pid & 0xFFFFFFFF, 0, 1), _insn(_RET_K, eperm)]
    for name in _SIGNALLING:
        guarded(nr[name], signal_checks)
    if deny_processes:
        # Threads only: clone without CLONE_THREAD is a new process; clone3 passes its flags in
        # memory the filter cannot read, so it is "unsupported" and libc falls back to clone.
        guarded(nr["clone"], [_insn(_JSET_K, _CLONE_THREAD, 1, 0), _insn(_RET_K, eperm)])
        deny(nr["clone3"], enosys)
        deny(nr["fork"], eperm)
        deny(nr["vfork"], eperm)
    if deny_rlimits:
        # Root outside a user namespace could raise its limits back: no setrlimit, and prlimit64
        # only to read (its third argument, the new limit, must be NULL).
        deny(nr["setrlimit"], eperm)
        new_limit = arg0_low + 16
        guarded(
            nr["prlimit64"],
            [
                _insn(_JEQ_K, 0, 0, 2),
                _insn(_LD_W_ABS, new_limit + 4),
                _insn(_JEQ_K, 0, 1, 0),
                _insn(_RET_K, eperm),
            ],
            offset=new_limit,
        )
    prog.append(_insn(_RET_K, _SECCOMP_RET_ALLOW))
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [
        ("len", ctypes.c_ushort),
        ("filter", ctypes.c_char_p),
    ]


def _seccomp(protected: list[int], *, deny_processes: bool, deny_rlimits: bool) -> tuple[bool, str]:
    arch = platform.machine()
    if arch not in _AUDIT_ARCH:
        return False, f"no filter for {arch} (x86_64 and aarch64 only)"
    program = _filter_program(
        arch, protected, deny_processes=deny_processes, deny_rlimits=deny_rlimits
    )
    fprog = _SockFprog(len(program) // 8, program)
    result = _lib().syscall(
        _SYS_SECCOMP[arch],
        _SECCOMP_SET_MODE_FILTER,
        _SECCOMP_FILTER_FLAG_TSYNC,
        ctypes.byref(fprog),
    )
    if result != 0:
        return False, f"seccomp() failed ({os.strerror(ctypes.get_errno())})"
    return True, ""
