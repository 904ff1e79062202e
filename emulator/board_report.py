"""Board report: per-cycle power, CPU, heap and airtime records. Mixed into board.Board."""


class ReportMixin:
    def _close_cycle(self):
        info = self._cycle_info
        self._cycle_info = None
        rec = self.meter.close_cycle(self.clock.now_us())
        log = getattr(self.sx, "tx_log", [])
        frames = log[info["tx_from"]:]
        rec.update({"cycle": len(self.cycles), "reset_cause": info["reset_cause"],
                    "wake_reason": info["wake_reason"], "peak_heap": info["peak_heap"],
                    "heap_base": info["heap_base"],
                    "cpu_ms": info["cpu_us"] / 1000.0,
                    # what the firmware's CPU work was measured in: counted work units
                    # (the same on any host), or host µs under CPython
                    "cpu_measure": {"unit": self.cpu_unit, "amount": info["cpu_raw"]},
                    "frames": len(frames), "airtime_ms": sum(f[1] for f in frames) / 1000.0})
        base, peak = info["heap_base"], info["peak_heap"]
        rec["firmware_heap"] = (peak - base) if (base is not None and peak is not None) else None
        awake = sum(v for k, v in rec["state_ms"].items() if k.startswith("active_"))
        rec["awake_ms"] = awake
        rec["boot_ms"] = float(self.defn.get("boot_ms", 0))   # part of awake_ms
        self.cycles.append(rec)
        return rec

    def report(self):
        """Per-cycle figures so far (the open cycle is shown up to now, not closed)."""
        cycles = list(self.cycles)
        total_mah = sum(c["charge_mah"] for c in cycles)
        total_s = sum((c["end_us"] - c["start_us"]) for c in cycles) / 1e6
        return {"board": self.name, "board_id": self.defn["id"], "cycles": cycles,
                "total_charge_mah": total_mah, "total_time_s": total_s,
                "average_current_ma": (total_mah * 3600.0 / total_s) if total_s > 0 else None}


