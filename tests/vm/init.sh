#!/bin/busybox sh
# PID 1 of a test VM on pure cgroup v2 (Debian's Linux 6.1, or Debian unstable's current
# kernel): sets the machine up, then runs every scenario once per transport the kernel
# offers: first with the daemon's defaults (auto, which must pick `lxcfs_expect=` of the
# kernel command line), then, where auto picked io_uring, with --transport classic. Each
# pass runs a daemon with its defaults and a second one with -l --enable-cfs
# --enable-cgroup, and each scenario in a real container (a cgroup + a new pid namespace).
# Prints `VMTEST pass <pass>` before a pass, `VMTEST <pass>/<name> PASS` or
# `VMTEST <pass>/<name> FAIL saw=[...] want=[...]` for each check, and `VMTEST DONE` last.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mkdir -p /sys/fs/cgroup /run /var/lib/lxcfs /tmp/cfs /tmp/run2
mount -t cgroup2 none /sys/fs/cgroup
for m in $(cat /lib/modules/load); do insmod /lib/modules/$m; done
echo "+cpu +cpuset +io +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
mkswap /dev/vdb >/dev/null 2>&1 && swapon /dev/vdb
echo "VMTEST kernel $(uname -r) cpus $(nproc) swap $(awk '/^SwapTotal/{print $2}' /proc/meminfo)"
expect=$(sed -n 's/.*lxcfs_expect=\([a-z]*\).*/\1/p' /proc/cmdline)
resend=$(sed -n 's/.*lxcfs_resend=\([01]\).*/\1/p' /proc/cmdline)

L=/var/lib/lxcfs
C=/tmp/cfs

check() { # name saw want
    if [ "$2" = "$3" ]; then echo "VMTEST $PASS/$1 PASS"; else echo "VMTEST $PASS/$1 FAIL saw=[$2] want=[$3]"; fi
}
atleast() { # name saw min
    if [ -n "$2" ] && [ "$2" -ge "$3" ] 2>/dev/null; then echo "VMTEST $PASS/$1 PASS"; else echo "VMTEST $PASS/$1 FAIL saw=[$2] want=[>= $3]"; fi
}
# run_in CGROUP CMD...: CMD as the init of a new pid namespace whose cgroup is CGROUP
run_in() {
    cg=/sys/fs/cgroup/$1; shift
    mkdir -p $cg
    sh -c 'echo $$ > '$cg'/cgroup.procs && exec unshare -p -f --mount-proc "$@"' sh "$@"
}

# run_in_cgns CGROUP CMD...: run_in, with the init in a cgroup namespace of its own too
run_in_cgns() {
    cg=/sys/fs/cgroup/$1; shift
    mkdir -p $cg
    sh -c 'echo $$ > '$cg'/cgroup.procs && exec util-linux-unshare -C -p -f --mount-proc "$@"' sh "$@"
}

# start_daemons ARGS...: both daemons with ARGS, mounted
start_daemons() {
    /bin/lxcfs-uring "$@" $L 2>/tmp/d1.log &
    /bin/lxcfs-uring "$@" -l --enable-cfs --enable-cgroup --enable-psi-poll --runtime-dir /tmp/run2 $C 2>/tmp/d2.log &
    n=0
    while [ ! -e $L/proc/meminfo ] || [ ! -e $C/proc/meminfo ]; do
        n=$((n + 1))
        if [ $n -gt 300 ]; then
            echo "VMTEST $PASS/mount FAIL saw=[$(cat /tmp/d1.log /tmp/d2.log)] want=[two mounts]"
            return 1
        fi
        sleep 0.1
    done
}

# stop_daemons: SIGTERM both (they unmount), and wait until the mounts are gone
stop_daemons() {
    kill $(cat /run/lxcfs.pid /tmp/run2/lxcfs.pid 2>/dev/null) 2>/dev/null
    n=0
    while grep -q -e " $L " -e " $C " /proc/mounts && [ $n -lt 100 ]; do n=$((n + 1)); sleep 0.1; done
}

# remove_cgroups: every scenario cgroup, deepest first, its processes killed
remove_cgroups() {
    for cg in $(find /sys/fs/cgroup -mindepth 1 -type d | sort -r); do
        for i in 1 2 3 4 5 6 7 8 9 10; do
            for p in $(cat $cg/cgroup.procs 2>/dev/null); do kill -9 $p 2>/dev/null; done
            rmdir $cg 2>/dev/null && break
            sleep 0.1
        done
    done
}

# the transport a daemon's log says it serves with
transport_of() {
    if grep -q "serving with FUSE-over-io_uring" $1; then echo uring
    elif grep -q "serving with the classic transport" $1; then echo classic
    else echo "none: $(cat $1)"; fi
}

scenarios() {
    # memory.max and memory.swap.max
    mkdir -p /sys/fs/cgroup/mem
    echo 268435456 > /sys/fs/cgroup/mem/memory.max
    echo 33554432 > /sys/fs/cgroup/mem/memory.swap.max
    run_in mem cat $L/proc/meminfo > /tmp/meminfo
    check mem_total "$(awk '/^MemTotal:/{print $2}' /tmp/meminfo)" 262144
    check swap_total "$(awk '/^SwapTotal:/{print $2}' /tmp/meminfo)" 32768
    free=$(awk '/^MemFree:/{print $2}' /tmp/meminfo)
    atleast mem_free "$free" 1
    mkdir -p /sys/fs/cgroup/bigswap
    echo 268435456 > /sys/fs/cgroup/bigswap/memory.max
    echo 1073741824 > /sys/fs/cgroup/bigswap/memory.swap.max
    check swap_capped_at_host "$(run_in bigswap awk '/^SwapTotal:/{print $2}' $L/proc/meminfo)" "$(awk '/^SwapTotal:/{print $2}' /proc/meminfo)"
    run_in mem cat $L/proc/swaps > /tmp/swaps
    check swaps_size "$(awk 'NR==2{print $1, $2, $3}' /tmp/swaps)" "none virtual 32768"

    # every way busybox reads a file: sendfile (cat, cp), 1-byte reads (dd bs=1), from the
    # end (tail, which uses the size); the size is a page multiple covering the file
    run_in mem sh -c "cat $L/proc/meminfo > /tmp/r_cat; cp $L/proc/meminfo /tmp/r_cp; dd if=$L/proc/meminfo of=/tmp/r_dd bs=1 2>/dev/null; tail -n 1 $L/proc/meminfo > /tmp/r_tail; stat -c %s $L/proc/meminfo > /tmp/r_size"
    lines=$(wc -l < /tmp/r_cat | tr -d ' ')
    check read_cat "$(awk '/^MemTotal:/{print $2}' /tmp/r_cat) $lines" "262144 $(wc -l < /proc/meminfo | tr -d ' ')"
    check read_cp "$(awk '/^MemTotal:/{print $2}' /tmp/r_cp) $(wc -l < /tmp/r_cp | tr -d ' ')" "262144 $lines"
    check read_bytewise "$(awk '/^MemTotal:/{print $2}' /tmp/r_dd) $(wc -l < /tmp/r_dd | tr -d ' ')" "262144 $lines"
    check read_tail "$(cut -d: -f1 /tmp/r_tail)" "$(tail -n 1 /tmp/r_cat | cut -d: -f1)"
    check read_size "$(awk -v s="$(cat /tmp/r_size)" -v n="$(wc -c < /tmp/r_cat)" 'BEGIN { print (s % 4096 == 0 && s >= n) ? "page multiple covering it" : s " for " n }')" "page multiple covering it"

    # passthrough (Linux 6.9+): the daemon says whether it is in use; a container's shell
    # re-reading meminfo with `read <` (an open, a read and a close in its one thread, so
    # every pass after the first is a re-open) gets its own file, read by the kernel
    if [ "$resend" = 1 ]; then pt="in use"; else pt="off, the kernel does not offer"; fi
    check passthrough_log "$(grep -o "passthrough: $pt" /tmp/d1.log | head -n 1)" "passthrough: $pt"
    pt_opens() { /bin/lxcfs-uring stats --runtime-dir /run | awk '/^passthrough_opens_(fresh|shared) / {n += $2} END {print n + 0}'; }
    before=$(pt_opens)
    check passthrough_reopens "$(run_in mem sh -c "i=0; while [ \$i -lt 200 ]; do read -r l < $L/proc/meminfo; i=\$((i + 1)); done; echo \$l" | awk '{print $2}')" 262144
    served=$(($(pt_opens) - before))
    if [ "$resend" = 1 ]; then atleast passthrough_served "$served" 100; else check passthrough_served "$served" 0; fi

    # /proc/pressure: the container's own cgroup's PSI (four busy loops on two CPUs make
    # its cpu pressure grow), never the host's
    mkdir -p /sys/fs/cgroup/psi
    ours=$(run_in psi sh -c "for i in 1 2 3 4; do timeout 1 sh -c 'while :; do :; done' & done; wait; cat $L/proc/pressure/cpu" | awk -F'total=' 'NR==1 {print $2}')
    cgroup=$(awk -F'total=' 'NR==1 {print $2}' /sys/fs/cgroup/psi/cpu.pressure)
    host=$(awk -F'total=' 'NR==1 {print $2}' /proc/pressure/cpu)
    check pressure_own "$([ -n "$ours" ] && [ "$ours" -gt 0 ] && [ "$ours" -le "$cgroup" ] && [ "$ours" -lt "$host" ] && echo yes || echo "ours=$ours cgroup=$cgroup host=$host")" yes

    # PSI triggers (the second daemon has --enable-psi-poll): a container arms one through
    # its pressure file (the file is 0666 then), a second on the same open file and a bogus
    # one are refused; the daemon holds one read-write fd on the cgroup's file while the
    # trigger lives, named in its registry, closed when the file is, and when the cgroup goes
    rwfds() {
        pid=$(cat /tmp/run2/lxcfs.pid); n=0
        for f in /proc/$pid/fd/*; do
            case "$(readlink $f)" in *pressure*) ;; *) continue ;; esac
            case "$(sed -n 's/^flags:[[:space:]]*//p' /proc/$pid/fdinfo/${f##*/})" in *2) n=$((n + 1)) ;; esac
        done
        echo $n
    }
    check psi_mode "$(stat -c %a $C/proc/pressure/cpu)" 666
    mkdir -p /sys/fs/cgroup/psitrig
    run_in psitrig sh -c "exec 3<>$C/proc/pressure/cpu
        printf 'some 100000 2000000\\000' >&3 && echo armed
        printf 'some 100000 2000000\\000' >&3 2>/dev/null || echo busy-refused
        exec 4<>$C/proc/pressure/memory
        printf 'bogus\\000' >&4 2>/dev/null || echo bogus-refused
        sleep 3" > /tmp/psi_out &
    psi=$!
    sleep 1.5
    check psi_fd_open "$(rwfds)" 1
    check psi_registry "$(grep -c psitrig/cpu.pressure /tmp/run2/psi-triggers)" 1
    wait $psi
    check psi_writes "$(tr '\n' ' ' < /tmp/psi_out)" "armed busy-refused bogus-refused "
    check psi_fd_closed "$(rwfds)" 0
    sh -c "echo \$\$ > /sys/fs/cgroup/psitrig/cgroup.procs; exec 3<>$C/proc/pressure/io; printf 'some 100000 2000000\\000' >&3; echo \$\$ > /sys/fs/cgroup/cgroup.procs; sleep 4" &
    psi=$!
    sleep 1
    check psi_cgroup_fd "$(rwfds)" 1
    rmdir /sys/fs/cgroup/psitrig
    sleep 0.5
    check psi_cgroup_removed "$(rwfds)" 0
    wait $psi

    # /proc/vmstat: the host's lines in its order, the container's own faults (at least
    # one per page dd's 32 MiB buffer touched: 16 where transparent huge pages back it, as
    # these kernels' default does; at most its cgroup's count, below the host's),
    # its own OOM kills; the host's file for a host process
    mkdir -p /sys/fs/cgroup/vm
    echo 268435456 > /sys/fs/cgroup/vm/memory.max
    run_in vm sh -c "dd if=/dev/zero of=/dev/null bs=32M count=1 2>/dev/null; cat $L/proc/vmstat" > /tmp/vmstat
    check vmstat_layout "$(cut -d' ' -f1 /tmp/vmstat | tr '\n' ' ')" "$(cut -d' ' -f1 /proc/vmstat | tr '\n' ' ')"
    vf=$(awk '$1=="pgfault"{print $2}' /tmp/vmstat)
    atleast vmstat_pgfault_own "$vf" 16
    atleast vmstat_pgfault_within_cgroup "$(awk '$1=="pgfault"{print $2}' /sys/fs/cgroup/vm/memory.stat)" "$vf"
    atleast vmstat_pgfault_below_host "$(awk '$1=="pgfault"{print $2}' /proc/vmstat)" "$((vf + 1))"
    check vmstat_zone_twin "$(awk '$1=="nr_zone_inactive_anon"{print $2}' /tmp/vmstat)" "$(awk '$1=="nr_inactive_anon"{print $2}' /tmp/vmstat)"
    mkdir -p /sys/fs/cgroup/vmoom
    echo 16777216 > /sys/fs/cgroup/vmoom/memory.max
    echo 0 > /sys/fs/cgroup/vmoom/memory.swap.max
    run_in vmoom sh -c "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; cat $L/proc/vmstat" > /tmp/vmoom
    atleast vmstat_oom_kill "$(awk '$1=="oom_kill"{print $2}' /tmp/vmoom)" 1
    check vmstat_oom_kill_cgroup "$(awk '$1=="oom_kill"{print $2}' /tmp/vmoom)" "$(awk '$1=="oom_kill"{print $2}' /sys/fs/cgroup/vmoom/memory.events)"
    check vmstat_oom_kill_other "$(awk '$1=="oom_kill"{print $2}' /tmp/vmstat)" 0
    h=$(awk '$1=="pgfault"{print $2}' /proc/vmstat)
    atleast vmstat_root_is_host "$(awk '$1=="pgfault"{print $2}' $L/proc/vmstat)" "$h"

    # /proc/stat procs_running and procs_blocked with -l: the container's threads at the
    # load tracker's 5 s sample (three busy loops in one container; the other sleeps)
    mkdir -p /sys/fs/cgroup/busy /sys/fs/cgroup/idle
    run_in busy sh -c "for i in 1 2 3; do timeout 8 sh -c 'while :; do :; done' & done; cat $C/proc/stat >/dev/null; sleep 6; awk '\$1==\"procs_running\"{print \$2}' $C/proc/stat; wait" > /tmp/procs_busy &
    bp=$!
    run_in idle sh -c "cat $C/proc/stat >/dev/null; sleep 6; awk '\$1==\"procs_running\"||\$1==\"procs_blocked\"{printf \"%s \", \$2}' $C/proc/stat" > /tmp/procs_idle
    wait $bp
    atleast procs_running_busy "$(cat /tmp/procs_busy)" 3
    check procs_idle "$(cat /tmp/procs_idle)" "1 0 "

    # a cpuset of one CPU
    mkdir -p /sys/fs/cgroup/one
    echo 1 > /sys/fs/cgroup/one/cpuset.cpus
    check cpuinfo_one "$(run_in one grep -c ^processor $L/proc/cpuinfo)" 1
    check online_one "$(run_in one cat $L/sys/devices/system/cpu/online)" 1
    check possible_one "$(run_in one cat $L/sys/devices/system/cpu/possible)" 1
    check stat_cpus_one "$(run_in one cat $L/proc/stat | awk '/^cpu[0-9]/{printf "%s ", $1}')" "cpu1 "
    check sys_cpudirs_one "$(run_in one ls $L/sys/devices/system/cpu | grep -c '^cpu[0-9]')" 1
    # /sys/devices/system/node from cpuset.mems.effective, the CPUs and memory.numa_stat
    check node_online_one "$(run_in one cat $L/sys/devices/system/node/online)" 0
    check node_dirs_one "$(run_in one ls $L/sys/devices/system/node | grep -c '^node[0-9]')" 1
    check node_cpulist_one "$(run_in one cat $L/sys/devices/system/node/node0/cpulist)" 1
    check node_meminfo_limit "$(run_in mem awk '/MemTotal:/{print $4}' $L/sys/devices/system/node/node0/meminfo)" 262144

    # cpu.max of 0.5 and 1.5 CPUs with --enable-cfs
    mkdir -p /sys/fs/cgroup/half /sys/fs/cgroup/oneandhalf
    echo "50000 100000" > /sys/fs/cgroup/half/cpu.max
    echo "150000 100000" > /sys/fs/cgroup/oneandhalf/cpu.max
    check cfs_half_cpuinfo "$(run_in half grep -c ^processor $C/proc/cpuinfo)" 1
    check cfs_half_online "$(run_in half cat $C/sys/devices/system/cpu/online)" 0
    check cfs_oneandhalf_cpuinfo "$(run_in oneandhalf grep -c ^processor $C/proc/cpuinfo)" 2
    check cfs_oneandhalf_online "$(run_in oneandhalf cat $C/sys/devices/system/cpu/online)" 0-1

    # a container that burns CPU sees its own usage and its own idle
    mkdir -p /sys/fs/cgroup/busy
    run_in busy sh -c "timeout 2 sh -c 'while :; do :; done'; cat $L/proc/stat $L/proc/uptime" > /tmp/busy
    busy=$(awk '/^cpu /{print $2 + $4}' /tmp/busy)
    atleast stat_own_usage "$busy" 50
    hostbusy=$(awk '/^cpu /{print $2 + $4}' /proc/stat)
    check stat_not_the_hosts "$([ "$busy" -lt "$hostbusy" ] && echo yes)" yes
    check uptime_own_idle "$(awk 'END{print ($1 >= 1.5 && $2 < $1 - 1) ? "yes" : $0}' /tmp/busy)" yes

    # io.stat-based diskstats on a virtio disk the container writes to
    mkdir -p /sys/fs/cgroup/io
    run_in io sh -c "dd if=/dev/zero of=/dev/vda bs=65536 count=32 oflag=direct 2>/dev/null; cat $L/proc/diskstats" > /tmp/disk
    atleast diskstats_writes "$(awk '$3 == "vda" {print $8}' /tmp/disk)" 32
    check diskstats_only_used "$(wc -l < /tmp/disk | tr -d ' ')" 1

    # -l: the load of a container running two busy loops
    mkdir -p /sys/fs/cgroup/load
    run_in load sh -c "cat $C/proc/loadavg; (timeout 12 sh -c 'while :; do :; done' &); (timeout 12 sh -c 'while :; do :; done' &); sleep 11; cat $C/proc/loadavg" > /tmp/load
    check loadavg_starts_at_zero "$(awk 'NR==1{print $1, $2, $3}' /tmp/load)" "0.00 0.00 0.00"
    check loadavg_rises "$(awk 'NR==2{print ($1 > 0.2) ? "yes" : $0}' /tmp/load)" yes

    # a container whose cgroup has no controller enabled (its parent delegates none): the
    # host's values, and every read succeeds
    mkdir -p /sys/fs/cgroup/plain/leaf
    run_in plain/leaf cat $L/proc/meminfo > /tmp/plain
    check missing_controller_meminfo "$(awk '/^MemTotal:/{print $2}' /tmp/plain)" "$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
    check missing_controller_reads "$(run_in plain/leaf sh -c "cat $L/proc/diskstats $L/proc/stat $L/proc/cpuinfo $L/proc/swaps >/dev/null && echo ok")" ok

    # cgroups laid out as systemd lays out services: the service's limit
    mkdir -p /sys/fs/cgroup/system.slice/foo.service
    echo "+cpu +cpuset +io +memory +pids" > /sys/fs/cgroup/system.slice/cgroup.subtree_control
    echo 134217728 > /sys/fs/cgroup/system.slice/foo.service/memory.max
    check systemd_service_memory "$(run_in system.slice/foo.service awk '/^MemTotal:/{print $2}' $L/proc/meminfo)" 131072

    # ... and as the kubelet (systemd driver) lays out a pod: limits on the pod's slice,
    # inherited by the container's scope, which sets none of its own
    pod=kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f3c9a1e_4b2d_4c6a_9e8f_123456789abc.slice
    scope=$pod/cri-containerd-3f2a9c0d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f.scope
    mkdir -p /sys/fs/cgroup/$scope
    for s in kubepods.slice kubepods.slice/kubepods-burstable.slice $pod; do
        echo "+cpu +cpuset +io +memory +pids" > /sys/fs/cgroup/$s/cgroup.subtree_control
    done
    echo 268435456 > /sys/fs/cgroup/$pod/memory.max
    echo 0 > /sys/fs/cgroup/$pod/memory.swap.max
    echo "50000 100000" > /sys/fs/cgroup/$pod/cpu.max
    echo 1 > /sys/fs/cgroup/$pod/cpuset.cpus
    run_in $scope sh -c "awk '/^MemTotal:/{print \$2}' $L/proc/meminfo; wc -l < $L/proc/swaps; grep -c ^processor $L/proc/cpuinfo; cat $L/sys/devices/system/cpu/online; grep -c ^processor $C/proc/cpuinfo; cat $C/sys/devices/system/cpu/online" > /tmp/pod
    check k8s_pod_memory "$(sed -n 1p /tmp/pod)" 262144
    check k8s_pod_no_swap "$(sed -n 2p /tmp/pod)" 1
    check k8s_pod_cpuset "$(sed -n 3,4p /tmp/pod | tr '\n' ' ')" "1 1 "
    check k8s_pod_quota "$(sed -n 5,6p /tmp/pod | tr '\n' ' ')" "1 0 "

    # a delegated subtree: the container moves its init into init.scope (as systemd in a
    # container does) and runs a workload in a child cgroup with a limit of its own; the
    # container is still its init's cgroup, init.scope left out
    mkdir -p /sys/fs/cgroup/deleg
    echo 268435456 > /sys/fs/cgroup/deleg/memory.max
    cat > /tmp/deleg.sh <<'DELEG'
D=/sys/fs/cgroup/deleg
mkdir $D/init.scope && echo 1 > $D/init.scope/cgroup.procs
echo "+memory +cpu" > $D/cgroup.subtree_control
mkdir $D/workload && echo 134217728 > $D/workload/memory.max
awk '/^MemTotal:/{print $2}' $1/proc/meminfo
sh -c 'echo $$ > '$D'/workload/cgroup.procs && exec awk "/^MemTotal:/{print \$2}" '$1/proc/meminfo
DELEG
    run_in deleg sh /tmp/deleg.sh $L > /tmp/deleg
    check delegated_init_scope "$(sed -n 1p /tmp/deleg)" 262144
    check delegated_workload "$(sed -n 2p /tmp/deleg)" 262144

    # a container in a cgroup namespace of its own: it sees its cgroup as the root, the
    # daemon still finds its limits
    mkdir -p /sys/fs/cgroup/cgns
    echo 268435456 > /sys/fs/cgroup/cgns/memory.max
    echo 0 > /sys/fs/cgroup/cgns/cpuset.cpus
    run_in_cgns cgns sh -c "cat /proc/self/cgroup; awk '/^MemTotal:/{print \$2}' $L/proc/meminfo; cat $L/sys/devices/system/cpu/online" > /tmp/cgns
    check cgns_own_root "$(sed -n 1p /tmp/cgns)" "0::/"
    check cgns_memory "$(sed -n 2p /tmp/cgns)" 262144
    check cgns_cpus "$(sed -n 3p /tmp/cgns)" 0

    # --enable-cgroup on pure v2 and Linux 6.1 (no pid translation ioctls: NSpid and
    # NS_GET_PARENT answer): a container sees only its own cgroup, its pids, and moves its own
    T=$C/cgroup/unified
    mkdir -p /sys/fs/cgroup/ct1 /sys/fs/cgroup/ct2
    check cgroup_tree_names "$(run_in ct1 ls $C/cgroup)" unified
    check cgroup_tree_confined "$(run_in ct1 ls $T)" ct1
    check cgroup_tree_sibling_hidden "$(run_in ct1 sh -c "ls $T/ct2 2>&1 | grep -c 'No such file'")" 1
    run_in ct1 sh -c "sleep 5 & cat $T/ct1/cgroup.procs" > /tmp/ctpids
    check cgroup_tree_pids "$(grep -c -x 1 /tmp/ctpids) $(awk '$1 > 100' /tmp/ctpids | wc -l)" "1 0"
    check cgroup_tree_move "$(run_in ct1 sh -c "sleep 5 & S=\$!; mkdir $T/ct1/sub && echo \$S > $T/ct1/sub/cgroup.procs && cat /proc/\$S/cgroup")" "0::/ct1/sub"
}

# resumed N: where upgrades work (FUSE_NOTIFY_RESEND), wait until the first daemon's log
# shows its Nth resume (20 s at most: a loaded machine slows the VM down), then 1 s more of
# reading; elsewhere 2 s (the daemon refuses at once)
resumed() {
    n=0
    while [ "$resend" = 1 ] && [ "$(grep -c '^lxcfs-uring: resumed on' /tmp/d1.log)" -lt $1 ] && [ $n -lt 200 ]; do
        n=$((n + 1)); sleep 0.1
    done
    if [ "$resend" = 1 ]; then sleep 1; else sleep 2; fi
}

# upgrades ARGS...: the first daemon (started with ARGS) upgraded in place twice (SIGUSR1),
# taken over once (--takeover) and, where the kernel can resend requests (6.9+), killed
# once (SIGKILL: its keeper starts a successor), while a container reads meminfo in a loop.
# Without FUSE_NOTIFY_RESEND the daemon refuses to upgrade, says why, and keeps serving.
upgrades() {
    mkdir -p /sys/fs/cgroup/readers
    run_in readers sh -c "n=0; bad=0; while [ ! -e /tmp/stop ]; do cat $L/proc/meminfo > /tmp/r 2>/dev/null && grep -q ^MemTotal: /tmp/r || bad=\$((bad + 1)); n=\$((n + 1)); [ -e /tmp/killed ] && [ ! -e /tmp/after ] && { echo \$bad > /tmp/before; touch /tmp/after; }; done; echo \$n \$bad" > /tmp/readers &
    reader=$!
    sleep 1
    kill -USR1 $(cat /run/lxcfs.pid); resumed 1
    kill -USR1 $(cat /run/lxcfs.pid); resumed 2
    /bin/lxcfs-uring --takeover "$@" $L 2>>/tmp/d1.log &
    resumed 3
    touch /tmp/killed
    while [ ! -e /tmp/after ]; do sleep 0.1; done
    if [ "$resend" = 1 ]; then
        # a crash is survived once the serving process has its keeper (it starts one once
        # it serves): wait for it, 20 s at most
        server=$(cat /run/lxcfs.pid)
        n=0
        while ! grep -q "keeper [0-9]*: holding the connection for pid $server\$" /tmp/d1.log && [ $n -lt 200 ]; do
            n=$((n + 1)); sleep 0.1
        done
        kill -9 $server
        resumed 4
    fi
    touch /tmp/stop
    wait $reader
    rm -f /tmp/stop /tmp/killed /tmp/after
    atleast upgrade_reads "$(awk '{print $1}' /tmp/readers)" 20
    check upgrade_no_failed_read "$(cat /tmp/before)" 0
    if [ "$resend" = 1 ]; then
        # a SIGKILL on io_uring may end the request the kernel routes, at that instant, to
        # an entry the dead server armed (one per CPU); nothing else fails
        crash=$(( $(awk '{print $2}' /tmp/readers) - $(cat /tmp/before) ))
        if [ "$want" = uring ]; then limit=2; else limit=0; fi
        check crash_failed_reads_at_most_one_per_cpu "$([ "$crash" -le $limit ] && echo ok || echo "$crash failed")" ok
        served=$(cat $L/proc/meminfo | head -c 9)
        check serves_after_crash "$served" "MemTotal:"
        # the daemons' log, to tell why
        [ "$served" = "MemTotal:" ] || sed 's/^/VMLOG /' /tmp/d1.log | tail -n 40
        # two in-place upgrades, a takeover and a crash's successor each resumed the mount
        atleast upgrades_resumed "$(grep -c '^lxcfs-uring: resumed on' /tmp/d1.log)" 4
    else
        atleast upgrade_refused_says_why "$(grep -c 'no FUSE_NOTIFY_RESEND (Linux 6.9+)' /tmp/d1.log)" 3
    fi
}

# reference: lxcfs 7.0 (Debian unstable's, in /opt/lxcfs7 with its own loader and
# libraries) beside the running daemons, the same containers reading both. For each case
# and file, refread.sh prints `VMREF <case> <file> <source> <bytes in hex>` (read(2) with
# dd, not busybox cat's sendfile, which lxcfs serves from the page cache); tests/vm.rs
# compares them field by field.
lxcfs7() { # MOUNTPOINT ARGS...: lxcfs 7.0 in a service cgroup of its own, as systemd runs it
    mnt=$1; shift
    mkdir -p $mnt /sys/fs/cgroup/lxcfs.service /tmp/run7$mnt
    sh -c 'echo $$ > /sys/fs/cgroup/lxcfs.service/cgroup.procs && exec /opt/lxcfs7/ld-linux-x86-64.so.2 --library-path /opt/lxcfs7/lib /opt/lxcfs7/lxcfs "$@"' sh "$@" -p /tmp/run7$mnt/lxcfs.pid $mnt >/tmp/run7$mnt/log 2>&1 &
}
reference() {
    echo "VMTEST lxcfs7 $(/opt/lxcfs7/ld-linux-x86-64.so.2 --library-path /opt/lxcfs7/lib /opt/lxcfs7/lxcfs --version 2>&1 | tr -d '"')"
    R=/tmp/lx7 RC=/tmp/lx7cfs RL=/tmp/lx7load
    lxcfs7 $R
    lxcfs7 $RC --enable-cfs
    lxcfs7 $RL -l
    n=0
    while [ ! -e $R/proc/meminfo ] || [ ! -e $RC/proc/meminfo ] || [ ! -e $RL/proc/meminfo ]; do
        n=$((n + 1))
        if [ $n -gt 300 ]; then echo "VMTEST reference FAIL saw=[$(cat /tmp/run7$R/log /tmp/run7$RC/log /tmp/run7$RL/log)] want=[lxcfs 7.0 mounted]"; return; fi
        sleep 0.1
    done
    cat > /tmp/refout.sh <<'REFOUT'
# out FILE SOURCE PATH: `VMREF $name FILE SOURCE <the bytes of PATH in hex>`, or the error
out() {
    if dd if="$3" of=/tmp/refbuf bs=65536 2>/tmp/referr; then
        h=$(od -An -v -tx1 < /tmp/refbuf | tr -d ' \n'); echo "VMREF $name $1 $2 ${h:-empty}"
    else
        echo "VMREF $name $1 $2 error:$(tr ' \n' '__' < /tmp/referr)"
    fi
}
REFOUT
    cat > /tmp/refread.sh <<'REFREAD'
# refread.sh CASE CGROUP LXCFS OURS FILES...: each file through lxcfs, then through ours;
# around each pressure file the cgroup's own, before and after; then the host's file for
# stat, diskstats and pressure (for every file when CGROUP is the root, ".")
name=$1 cg=$2 lx=$3 ours=$4; shift 4
. /tmp/refout.sh
for f in "$@"; do
    p=${f#proc/pressure/}
    [ "$p" != "$f" ] && out $f cgroup-before /sys/fs/cgroup/$cg/$p.pressure
    out $f lxcfs $lx/$f
    out $f ours $ours/$f
    [ "$p" != "$f" ] && out $f cgroup-after /sys/fs/cgroup/$cg/$p.pressure
    if [ $f = proc/stat ] || [ $f = proc/diskstats ] || [ "$p" != "$f" ] || [ $cg = . ]; then out $f host /$f; fi
done
# the cpu and pressure directories' entries and sizes, as ls and stat see them
for d in lxcfs:$lx ours:$ours; do
    ls -a ${d#*:}/sys/devices/system/cpu | tr '\n' ' ' > /tmp/refls; out ls:sys/devices/system/cpu ${d%%:*} /tmp/refls
    stat -c '%a %s' ${d#*:}/proc/slabinfo ${d#*:}/proc/meminfo | tr '\n' ' ' > /tmp/refls; out stat:proc ${d%%:*} /tmp/refls
    ls ${d#*:}/proc/pressure | tr '\n' ' ' > /tmp/refls; out ls:proc/pressure ${d%%:*} /tmp/refls
done
ls /proc/pressure | tr '\n' ' ' > /tmp/refls; out ls:proc/pressure host /tmp/refls
REFREAD
    F="proc/meminfo proc/cpuinfo proc/stat proc/uptime proc/swaps proc/loadavg proc/pressure/cpu proc/pressure/io proc/pressure/memory proc/diskstats sys/devices/system/cpu/online"
    mkdir -p /sys/fs/cgroup/ref-mem /sys/fs/cgroup/ref-cpu0 /sys/fs/cgroup/ref-plain /sys/fs/cgroup/ref-half /sys/fs/cgroup/ref-oneandhalf
    echo 268435456 > /sys/fs/cgroup/ref-mem/memory.max
    echo 33554432 > /sys/fs/cgroup/ref-mem/memory.swap.max
    echo 1 > /sys/fs/cgroup/ref-mem/cpuset.cpus
    echo 0 > /sys/fs/cgroup/ref-cpu0/cpuset.cpus
    echo "50000 100000" > /sys/fs/cgroup/ref-half/cpu.max
    echo "150000 100000" > /sys/fs/cgroup/ref-oneandhalf/cpu.max
    # the memory case uses memory and CPU first, so neither side reads zeros
    run_in ref-mem sh -c "timeout 1 sh -c 'while :; do :; done'; dd if=/dev/zero of=/tmp/refmem bs=1M count=16 2>/dev/null; sh /tmp/refread.sh mem ref-mem $R $L $F; rm /tmp/refmem"
    for c in cpu0 plain; do run_in ref-$c sh /tmp/refread.sh $c ref-$c $R $L $F; done
    for c in half oneandhalf; do run_in ref-$c sh /tmp/refread.sh cfs-$c ref-$c $RC $C proc/cpuinfo proc/stat sys/devices/system/cpu/online; done
    # a host process (the root cgroup): both show the host's memory
    sh /tmp/refread.sh host . $R $L proc/meminfo proc/swaps
    # writes: the error each gives a program writing its files (busy box's message, less
    # the path)
    name=write
    . /tmp/refout.sh
    for f in proc/meminfo proc/uptime sys/devices/system/cpu/online; do
        for d in lxcfs:$R ours:$L; do
            sh -c "echo 1 > ${d#*:}/$f" 2>&1 | sed 's/.*: //' > /tmp/referrmsg; out $f ${d%%:*} /tmp/referrmsg
        done
    done
    # with -l (ours: the second daemon): a busy container reads loadavg through both, which
    # starts their sampling, then again two samples (11 s) later, then its newest pid;
    # meanwhile ours' stat is read every second under a quota of half a CPU (its idle must
    # never go down). The host's list of the container's threads comes last.
    mkdir -p /sys/fs/cgroup/ref-load
    echo "50000 100000" > /sys/fs/cgroup/ref-load/cpu.max
    cat > /tmp/refload.sh <<'REFLOAD'
name=load
. /tmp/refout.sh
sh -c 'while :; do :; done' &
out proc/loadavg lxcfs-first $1/proc/loadavg
out proc/loadavg ours-first $2/proc/loadavg
for i in 1 2 3 4 5 6 7 8 9 10 11; do out proc/stat ours-$i $2/proc/stat; sleep 1; done
out proc/loadavg lxcfs $1/proc/loadavg
out proc/loadavg ours $2/proc/loadavg
ls /proc | grep -E '^[0-9]+$' | sort -n | tail -1 > /tmp/refnsmax
out newest-pid ns /tmp/refnsmax
REFLOAD
    run_in ref-load sh -c "sleep 30 & sh /tmp/refload.sh $RL $C" &
    loader=$!
    sleep 2
    cat /sys/fs/cgroup/ref-load/cgroup.threads > /tmp/refthreads
    name=load
    out threads host /tmp/refthreads
    wait $loader
    kill $(cat /tmp/run7$R/lxcfs.pid /tmp/run7$RC/lxcfs.pid /tmp/run7$RL/lxcfs.pid)
    n=0
    while grep -q -e " $R " -e " $RC " -e " $RL " /proc/mounts && [ $n -lt 50 ]; do n=$((n + 1)); sleep 0.1; done
    umount -l $R $RC $RL 2>/dev/null
    echo "VMTEST reference done"
}

for PASS in auto classic; do
    if [ $PASS = classic ] && [ "$expect" = classic ]; then break; fi
    echo "VMTEST pass $PASS"
    if [ $PASS = auto ]; then want=$expect; start_daemons; else want=classic; start_daemons --transport classic; fi && {
        check transport "$(transport_of /tmp/d1.log)" $want
        check transport_second "$(transport_of /tmp/d2.log)" $want
        scenarios
        if [ $PASS = auto ] && [ -x /opt/lxcfs7/lxcfs ]; then reference; fi
        if [ $PASS = auto ]; then upgrades; else upgrades --transport classic; fi
    }
    stop_daemons
    remove_cgroups
done

echo "VMTEST DONE"
poweroff -f
