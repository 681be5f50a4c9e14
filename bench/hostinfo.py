"""What a benchmark ran on, for its header: runs on different hosts are not comparable.

The same VM kind lands on different CPUs (a Zen 5 class EPYC one day, a Zen 3 one the next,
with a third of the speed and half the L2), so every benchmark names the CPU it measured.
"""

import os
import platform


def describe():
    """'2 cores, AMD EPYC (family 25 model 1), L2 512 KiB per core, Linux 6.18.44'."""
    name, family, model = "unknown CPU", "?", "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name":
                    name = value
                elif key == "cpu family":
                    family = value
                elif key == "model":
                    model = value
                elif key == "processor" and value != "0":
                    break
    except OSError:
        pass
    l2 = ""
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index2/size") as f:
            l2 = f", L2 {f.read().strip().replace('K', ' KiB')} per core"
    except OSError:
        pass
    return (f"{os.cpu_count()} cores, {name} (family {family} model {model}){l2}, "
            f"Linux {platform.release()}")


if __name__ == "__main__":
    print(describe())
