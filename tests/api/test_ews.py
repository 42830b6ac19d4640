"""The flood early warning against the real daemon: rules judged in reading time as readings are
ingested (level with hysteresis and hold — the Masamba 20:45 drop must not clear —, suspect
readings, rate of rise, sudden fall with upstream rain, rain over 1 h and 24 h, silent and stuck
gauges), one open alert per station and rule under concurrent ingest, people acknowledging and
shelving, escalation, backfill, live alert events, the rules API, and a restart.

Readings carry explicit times ("t", epoch seconds, within the backfill window): the engine
decides in reading time, so a test replays hours of river in one request. Stations get a river
of their own unless a test wants rain gauges on the same river.
"""
import calendar
import json
import threading
import time
import unittest

from tests.api.harness import Daemon, DaemonTest, wait_until
from tests.api.test_sensors import SSE

SENML = "application/senml+json"
ENV = {"SINERGI_SEED_DEMO": "0", "SINERGI_EWS_LIVE_WINDOW_S": "600"}
STEP = 600  # ten minutes between readings


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def unix(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def series(t0, values, step=STEP, start=0):
    """[(time, value)] for values every `step` seconds, the first at t0 + start * step."""
    return [(t0 + step * (start + i), v) for i, v in enumerate(values)]


class EwsBase(DaemonTest):
    env = ENV

    # -- stations and readings -----------------------------------------------------------------
    def station(self, code, kind="water_level", river=None, interval_s=86400,
                thresholds=(2.0, 3.0, 4.0), opd="bpbd", token=None):
        """Creates a station and returns its device token. The long default interval keeps
        hours-old test readings from making the station silent by the wall clock."""
        body = {"code": code, "name": "TEST " + code, "kind": kind, "lat": -2.5569,
                "lon": 120.3304, "region": "73.22.03.1002", "river": river or ("Sungai " + code),
                "opd": opd, "interval_s": interval_s}
        if kind == "water_level":
            body["thresholds"] = dict(zip(("waspada", "siaga", "awas"), thresholds))
        r = self.d.request("POST", "/api/v1/stations", body, token=token or self.admin)
        self.assertEqual(r.status, 201, r)
        return r.json["device_token"]

    def send(self, tok, code, points, sensor="level", conn=None):
        pack = [{"n": "%s:%s" % (code, sensor), "t": t, "v": v} for t, v in points]
        r = self.d.request("POST", "/api/v1/ingest", json.dumps(pack), token=tok,
                           content_type=SENML, conn=conn)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["stored"], r.json["rejected"]), (len(points), []), r)
        return r.json

    def qc(self, code, t):
        """(qc, tests) of the raw reading of `code` at time t."""
        r = self.d.request("GET", "/api/v1/stations/%s/readings?from=%d&to=%d&step=raw"
                           % (code, t, t), token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json["points"]), 1, r)
        p = r.json["points"][0]
        return p["qc"], p.get("qc_tests", [])

    # -- alerts ----------------------------------------------------------------------------------
    def alerts(self, code, rule=None, state="all", token=None):
        r = self.d.request("GET", "/api/v1/alerts?state=%s&station=%s&limit=1000" % (state, code),
                           token=token or self.admin)
        self.assertEqual(r.status, 200, r)
        for a in r.json:
            self.assertEqual(a["station"], code)
        return [a for a in r.json if rule is None or a["rule"] == rule]

    def only(self, code, rule):
        """The one alert (of any state) of (station, rule)."""
        got = self.alerts(code, rule)
        self.assertEqual(len(got), 1, got)
        return self.get(got[0]["id"])

    def open_alert(self, code, rule):
        """The open alert of (station, rule) with its history, or None; never two."""
        got = self.alerts(code, rule, state="open")
        self.assertLessEqual(len(got), 1, got)
        return self.get(got[0]["id"]) if got else None

    def get(self, aid, token=None):
        r = self.d.request("GET", "/api/v1/alerts/%d" % aid, token=token or self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertIn("history", r.json)
        return r.json

    def ack(self, aid, note=None, token=None, status=200):
        body = {} if note is None else {"note": note}
        r = self.d.request("POST", "/api/v1/alerts/%d/ack" % aid, body, token=token or self.admin)
        if status == 200:
            self.assertEqual(r.status, 200, r)
        else:
            self.assertError(r, status)
        return r

    def shelve(self, aid, body, token=None):
        return self.d.request("POST", "/api/v1/alerts/%d/shelve" % aid, body,
                              token=token or self.admin)

    def put_rule(self, code, rule, body, token=None):
        return self.d.request("PUT", "/api/v1/stations/%s/rules/%s" % (code, rule), body,
                              token=token or self.admin)

    def set_params(self, code, rule, **params):
        r = self.put_rule(code, rule, {"params": params})
        self.assertEqual(r.status, 200, r)
        return r.json

    def steps(self, alert):
        """(msg_type, action, level, state) of each version, oldest first."""
        return [(h["msg_type"], h["action"], h["level"], h["state"]) for h in alert["history"]]

    def assertLabel(self, alert, level, label):
        self.assertEqual((alert["level"], alert["label"]), (level, label), alert)


# ---- 1. level: thresholds, hysteresis, hold ------------------------------------------------------
class LevelTest(EwsBase):

    def test_rises_through_three_levels_and_the_masamba_drop_does_not_clear(self):
        code = "lv-masamba"
        tok = self.station(code)
        t0 = int(time.time()) - 12 * 3600
        # Rising through Waspada (2.0 m): one alert, msg_type Alert.
        self.send(tok, code, series(t0, [1.00, 1.50, 1.90, 2.10]))
        a = self.only(code, "level")
        self.assertLabel(a, 1, "Waspada (Siaga 3)")
        self.assertEqual((a["status"], a["siaga"], a["state"], a["public"], a["version"]),
                         ("Waspada", "Siaga 3", "active_unack", True, 1))
        self.assertEqual((a["value"], a["raised_at"], a["updated_at"]),
                         (2.10, iso(t0 + 3 * STEP), iso(t0 + 3 * STEP)))
        self.assertEqual(self.steps(a), [("Alert", "raised", 1, "active_unack")])
        self.assertEqual(a["history"][0]["at"], iso(t0 + 3 * STEP))
        self.assertEqual(a["history"][0]["actor"], "rules")
        # Siaga (3.0 m), then Awas (4.0 m): the same alert, updated.
        self.send(tok, code, series(t0, [2.40, 2.80, 3.05], start=4))
        b = self.only(code, "level")
        self.assertEqual(b["id"], a["id"])
        self.assertLabel(b, 2, "Siaga (Siaga 2)")
        self.send(tok, code, series(t0, [3.40, 3.80, 4.10, 4.30], start=7))
        c = self.only(code, "level")
        self.assertEqual(c["id"], a["id"])
        self.assertLabel(c, 3, "Awas (Siaga 1)")
        self.assertEqual((c["state"], c["version"], c["value"]), ("active_unack", 3, 4.10))
        self.assertEqual(c["raised_at"], iso(t0 + 3 * STEP))
        self.assertEqual(c["updated_at"], iso(t0 + 9 * STEP))
        self.assertEqual(self.steps(c), [("Alert", "raised", 1, "active_unack"),
                                         ("Update", "level", 2, "active_unack"),
                                         ("Update", "level", 3, "active_unack")])
        self.assertEqual([h["at"] for h in c["history"]],
                         [iso(t0 + 3 * STEP), iso(t0 + 6 * STEP), iso(t0 + 9 * STEP)])
        # 20:45: the water drops well below Awas for 30 minutes — people went home. Nothing
        # clears, nothing is even sent.
        self.send(tok, code, series(t0, [3.60, 3.50, 3.55, 3.45], start=11))
        d = self.only(code, "level")
        self.assertEqual((d["level"], d["state"], d["version"]), (3, "active_unack", 3))
        # 21:00: the surge. Still the same alert at Awas.
        self.send(tok, code, series(t0, [4.40], start=15))
        self.assertEqual(self.only(code, "level")["version"], 3)
        # The river recedes: 50 minutes below Awas − 0.10 m are not yet the hour of hold...
        self.send(tok, code, series(t0, [3.20, 2.40, 1.60, 1.20, 1.10, 1.05], start=16))
        e = self.only(code, "level")
        self.assertEqual((e["level"], e["state"], e["version"]), (3, "active_unack", 3))
        # ... a full hour is: cleared (Cancel), waiting for a person to acknowledge.
        self.send(tok, code, series(t0, [1.02], start=22))
        f = self.only(code, "level")
        self.assertEqual((f["level"], f["state"], f["version"]), (0, "cleared_unack", 4))
        self.assertEqual(f["cleared_at"], iso(t0 + 22 * STEP))
        self.assertIsNone(f["closed_at"])
        self.assertEqual(f["history"][-1]["msg_type"], "Cancel")
        self.assertEqual(f["history"][-1]["at"], iso(t0 + 22 * STEP))
        self.assertEqual(len(self.alerts(code, "level", state="open")), 1)
        # Acknowledging the cleared alert closes it.
        g = self.ack(f["id"], "surut, aman").json
        self.assertEqual((g["state"], g["acked_by"]), ("closed", "admin"))
        self.assertIsNotNone(g["closed_at"])
        self.assertEqual(self.steps(g)[-1], ("Update", "ack", 0, "closed"))
        self.assertEqual(g["history"][-1]["note"], "surut, aman")
        self.assertEqual(self.alerts(code, "level", state="open"), [])
        self.assertEqual(len(self.alerts(code, "level")), 1)

    def test_hysteresis_and_a_shorter_hold(self):
        code = "lv-hold"
        tok = self.station(code)
        rules = self.set_params(code, "level", hold_s=600)
        level = [x for x in rules["rules"] if x["rule"] == "level"][0]
        self.assertEqual((level["params"]["hold_s"], level["params"]["hysteresis_m"]), (600, 0.1))
        t0 = int(time.time()) - 6 * 3600
        self.send(tok, code, series(t0, [1.00, 1.50, 2.20]))
        self.assertEqual(self.only(code, "level")["level"], 1)
        # Below 2.0 m but within the 0.10 m margin for 20 minutes (> hold): not below yet.
        self.send(tok, code, series(t0, [2.50, 1.95, 1.93], start=3))
        self.assertEqual(self.only(code, "level")["state"], "active_unack")
        # Below 1.90 m: the hold starts; 10 minutes later it clears.
        self.send(tok, code, series(t0, [1.80], start=6))
        self.assertEqual(self.only(code, "level")["state"], "active_unack")
        self.send(tok, code, series(t0, [1.70], start=7))
        a = self.only(code, "level")
        self.assertEqual((a["state"], a["level"], a["cleared_at"]),
                         ("cleared_unack", 0, iso(t0 + 7 * STEP)))
        self.assertEqual([s[0] for s in self.steps(a)], ["Alert", "Cancel"])
        self.assertEqual(self.ack(a["id"]).json["state"], "closed")

    def test_acknowledged_alert_closes_when_cleared_and_a_rise_rearms_it(self):
        code = "lv-acked"
        tok = self.station(code)
        self.set_params(code, "level", hold_s=600)
        t0 = int(time.time()) - 6 * 3600
        self.send(tok, code, series(t0, [1.00, 1.50, 2.30]))
        a = self.only(code, "level")
        b = self.ack(a["id"], "diterima").json
        self.assertEqual((b["state"], b["acked_by"], b["version"]), ("active_ack", "admin", 2))
        self.assertIsNotNone(b["acked_at"])
        # A higher level needs acknowledging again.
        self.send(tok, code, series(t0, [3.10], start=3))
        c = self.only(code, "level")
        self.assertEqual((c["level"], c["state"]), (2, "active_unack"))
        self.assertEqual((c["acked_by"], c["acked_at"]), (None, None))  # the old ack is gone
        self.assertEqual(self.ack(c["id"]).json["state"], "active_ack")
        # Cleared while acknowledged: closed at once.
        self.send(tok, code, series(t0, [2.60, 1.70, 1.60], start=4))
        d = self.only(code, "level")
        self.assertEqual((d["state"], d["level"]), ("closed", 0))
        self.assertIsNotNone(d["closed_at"])
        self.assertEqual(self.steps(d)[-1], ("Cancel", "cleared", 0, "closed"))
        self.ack(d["id"], status=409)

    def test_raised_again_before_acknowledged_starts_a_new_alert(self):
        code = "lv-again"
        tok = self.station(code)
        self.set_params(code, "level", hold_s=600)
        t0 = int(time.time()) - 6 * 3600
        self.send(tok, code, series(t0, [1.00, 1.50, 2.30, 1.70, 1.60]))
        old = self.only(code, "level")
        self.assertEqual(old["state"], "cleared_unack")
        self.send(tok, code, series(t0, [2.20], start=5))
        got = self.alerts(code, "level")
        self.assertEqual(len(got), 2, got)
        new = self.open_alert(code, "level")
        self.assertNotEqual(new["id"], old["id"])
        self.assertEqual((new["level"], new["state"], new["version"]), (1, "active_unack", 1))
        old = self.get(old["id"])
        self.assertEqual(old["state"], "closed")
        self.assertEqual(old["history"][-1]["note"], "raised again before it was acknowledged")

    def test_a_station_s_first_reading_is_judged(self):
        # The first reading the engine sees of a station (a new gauge, or any gauge after a
        # restart) is already stored when it is judged: it must be judged, not skipped as seen.
        now = int(time.time())
        tok = self.station("lv-first")
        self.send(tok, "lv-first", [(now - 60, 2.5)])
        a = self.only("lv-first", "level")
        self.assertEqual((a["level"], a["value"], a["raised_at"]), (1, 2.5, iso(now - 60)))
        rtok = self.station("lv-first-rain", kind="rain")
        self.send(rtok, "lv-first-rain", [(now - 60, 25.0)], sensor="rain")
        self.assertEqual(self.only("lv-first-rain", "rain_1h")["level"], 1)


# ---- 2. suspect readings -------------------------------------------------------------------------
class SuspectTest(EwsBase):

    def test_a_spike_neither_raises_nor_clears_but_a_confirming_reading_raises(self):
        code = "qc-spike"
        tok = self.station(code)
        self.set_params(code, "level", hold_s=0)  # would clear at the first reading below
        t0 = int(time.time()) - 6 * 3600
        self.send(tok, code, series(t0, [1.00, 1.20]))
        # A jump of 2.3 m in one report: suspect (spike). No alert of any rule.
        self.send(tok, code, series(t0, [3.50], start=2))
        self.assertEqual(self.qc(code, t0 + 2 * STEP), ("suspect", ["spike"]))
        self.assertEqual(self.alerts(code), [])
        # The next reading confirms the surge (judged against 3.50): now it is Siaga.
        self.send(tok, code, series(t0, [3.55], start=3))
        self.assertEqual(self.qc(code, t0 + 3 * STEP), ("good", []))
        a = self.only(code, "level")
        self.assertEqual((a["level"], a["value"], a["raised_at"]), (2, 3.55, iso(t0 + 3 * STEP)))
        # A spike down does not clear it, even with no hold at all...
        self.send(tok, code, series(t0, [1.20], start=4))
        self.assertEqual(self.qc(code, t0 + 4 * STEP), ("suspect", ["spike"]))
        b = self.only(code, "level")
        self.assertEqual((b["state"], b["level"], b["version"]), ("active_unack", 2, 1))
        # ... the good reading after it does.
        self.send(tok, code, series(t0, [1.25], start=5))
        c = self.only(code, "level")
        self.assertEqual((c["state"], c["level"]), ("cleared_unack", 0))
        self.assertEqual([h["at"] for h in c["history"]],
                         [iso(t0 + 3 * STEP), iso(t0 + 5 * STEP)])


# ---- 3, 4. rate of rise, sudden fall -------------------------------------------------------------
class RiseAndFallTest(EwsBase):

    def test_rate_of_rise_raises_siaga_below_waspada(self):
        code = "rr-fast"
        tok = self.station(code)
        t0 = int(time.time()) - 4 * 3600
        self.send(tok, code, series(t0, [0.50, 0.55, 0.60, 0.70]))
        self.assertEqual(self.alerts(code), [])
        self.send(tok, code, series(t0, [1.25], start=4))  # +0.55 m in 10 minutes
        a = self.only(code, "rate_of_rise")
        self.assertLabel(a, 2, "Siaga (Siaga 2)")
        self.assertEqual((a["public"], a["value"], a["raised_at"]),
                         (True, 1.25, iso(t0 + 4 * STEP)))
        self.assertEqual(self.alerts(code, "level"), [])  # 1.25 m is below Waspada
        # The same rise with rise_m 1.0 on another gauge is no alarm.
        tok2 = self.station("rr-tuned")
        self.set_params("rr-tuned", "rate_of_rise", rise_m=1.0)
        self.send(tok2, "rr-tuned", series(t0, [0.50, 0.55, 0.60, 0.70, 1.25]))
        self.assertEqual(self.alerts("rr-tuned"), [])

    FALL = [1.20, 1.30, 1.40, 1.45, 1.50, 0.90]  # 0.60 m below the 30-minute peak at the end

    def fall_with_rain(self, name, rain_per_report):
        river = "Sungai " + name
        rtok = self.station(name + "-rain", kind="rain", river=river)
        wtok = self.station(name, river=river)
        t0 = int(time.time()) - 3 * 3600
        self.send(rtok, name + "-rain", series(t0, [rain_per_report] * 6), sensor="rain")
        self.send(wtok, name, series(t0, self.FALL))
        return t0

    def test_sudden_fall_while_rain_continues_upstream(self):
        t0 = self.fall_with_rain("sf-wet", 2.0)  # 12 mm in the hour before the fall
        a = self.only("sf-wet", "sudden_fall")
        self.assertEqual((a["level"], a["public"], a["value"], a["raised_at"]),
                         (2, False, 0.90, iso(t0 + 5 * STEP)))
        self.assertEqual(self.alerts("sf-wet-rain", "rain_1h"), [])  # 12 mm/h is no rain alert

    def test_no_sudden_fall_alarm_when_the_river_s_rain_gauge_is_dry(self):
        self.fall_with_rain("sf-dry", 0.0)
        self.assertEqual(self.alerts("sf-dry", "sudden_fall"), [])

    def test_sudden_fall_without_a_rain_gauge_goes_to_operators(self):
        tok = self.station("sf-alone")
        self.send(tok, "sf-alone", series(int(time.time()) - 3 * 3600, self.FALL))
        a = self.only("sf-alone", "sudden_fall")
        self.assertEqual((a["level"], a["public"]), (2, False))

    def test_named_rain_station_is_the_one_asked(self):
        # A gauge on another river, named as the upstream gauge: dry, so no alarm.
        self.fall_with_rain("sf-named-src", 0.0)
        tok = self.station("sf-named")
        self.set_params("sf-named", "sudden_fall", rain_station="sf-named-src-rain")
        self.send(tok, "sf-named", series(int(time.time()) - 3 * 3600, self.FALL))
        self.assertEqual(self.alerts("sf-named", "sudden_fall"), [])


# ---- 5. rain ------------------------------------------------------------------------------------
class RainTest(EwsBase):

    def test_rain_in_one_hour(self):
        code = "rn-1h"
        tok = self.station(code, kind="rain", interval_s=600)
        t0 = int(time.time()) - 4 * 3600
        self.send(tok, code, series(t0, [2.0, 5.0, 5.0, 5.0, 5.0]), sensor="rain")  # 22 mm
        a = self.only(code, "rain_1h")
        self.assertLabel(a, 1, "Waspada (Siaga 3)")
        self.assertEqual((a["value"], a["public"], a["raised_at"]),
                         (22.0, True, iso(t0 + 4 * STEP)))
        self.send(tok, code, series(t0, [10.0], start=5), sensor="rain")  # 32 mm
        self.assertLabel(self.only(code, "rain_1h"), 2, "Siaga (Siaga 2)")
        # The hour is (t - 1 h, t]: the first 2 mm fell out of it; 55 mm.
        self.send(tok, code, series(t0, [25.0], start=6), sensor="rain")
        c = self.only(code, "rain_1h")
        self.assertLabel(c, 3, "Awas (Siaga 1)")
        self.assertEqual(c["value"], 55.0)
        self.assertEqual([s[:3] for s in self.steps(c)],
                         [("Alert", "raised", 1), ("Update", "level", 2),
                          ("Update", "level", 3)])
        # 57 mm in the day: Waspada for 24 hours as well.
        d = self.only(code, "rain_24h")
        self.assertEqual((d["level"], d["value"]), (1, 57.0))

    def test_rain_in_a_day(self):
        # 10 mm every hour: never 20 mm in an hour, but 50, 100, 150 mm in the day.
        code = "rn-24h"
        tok = self.station(code, kind="rain", interval_s=3600)
        t0 = int(time.time()) - 20 * 3600
        self.send(tok, code, series(t0, [10.0] * 16, step=3600), sensor="rain")
        a = self.only(code, "rain_24h")
        self.assertLabel(a, 3, "Awas (Siaga 1)")
        self.assertEqual([(h["msg_type"], h["level"], h["value"], h["at"]) for h in a["history"]],
                         [("Alert", 1, 50.0, iso(t0 + 4 * 3600)),
                          ("Update", 2, 100.0, iso(t0 + 9 * 3600)),
                          ("Update", 3, 150.0, iso(t0 + 14 * 3600))])
        self.assertEqual(self.alerts(code, "rain_1h"), [])


# ---- 6. silent and stuck gauges ------------------------------------------------------------------
class SilentTest(EwsBase):

    def test_silent_station_alarms_and_a_fresh_reading_clears(self):
        self.station("sl-never", interval_s=10)  # never reported: unknown, not alarming
        tok = self.station("sl-quiet", interval_s=10)
        t_read = int(time.time()) - 1
        self.send(tok, "sl-quiet", [(t_read, 1.00)])
        a = wait_until(lambda: self.open_alert("sl-quiet", "silent"), timeout=40,
                       what="a silent-station alarm after two intervals")
        self.assertEqual((a["level"], a["public"], a["state"]), (1, False, "active_unack"))
        self.assertEqual(self.steps(a), [("Alert", "raised", 1, "active_unack")])
        # Raised for the silence (wall clock), two intervals after the last reading.
        self.assertGreaterEqual(unix(a["raised_at"]), t_read + 20)
        self.assertEqual(self.alerts("sl-never"), [])
        # The gauge speaks again: the alarm clears.
        self.send(tok, "sl-quiet", [(int(time.time()), 1.01)])
        b = wait_until(lambda: (lambda x: x if x["state"] == "cleared_unack" else None)(
            self.get(a["id"])), timeout=20, what="the silent alarm to clear")
        self.assertEqual(b["level"], 0)
        self.assertEqual(self.steps(b)[-1][:2], ("Cancel", "cleared"))
        self.assertEqual(self.alerts("sl-never"), [])

    def test_stuck_gauge_raises_silent(self):
        code = "sl-stuck"
        tok = self.station(code)
        n_stuck = 12
        t_end = int(time.time()) - 60
        times = [t_end - STEP * (n_stuck + 3 - i) for i in range(n_stuck + 4)]
        self.send(tok, code, list(zip(times[:3], [1.00, 1.10, 1.20])))
        raised_at = None
        first_flat = None
        for k in range(n_stuck):
            t = times[3 + k]
            self.send(tok, code, [(t, 1.50)])
            flag, tests = self.qc(code, t)
            if "flat" in tests and first_flat is None:
                first_flat = k + 1
            if self.open_alert(code, "silent"):
                raised_at = k + 1
                break
            if first_flat is None:
                self.assertEqual(flag, "good", (k, flag, tests))
        self.assertIsNotNone(first_flat, "QC never flagged the stuck readings flat")
        self.assertIsNotNone(raised_at, "a stuck gauge never raised the silent alarm")
        # Exactly when QC calls the run flat (the 6th identical reading): the default
        # `flat_readings` is 1 flat-flagged reading.
        self.assertEqual(raised_at, first_flat)
        a = self.open_alert(code, "silent")
        self.assertEqual((a["level"], a["public"]), (1, False))
        self.assertEqual(self.alerts(code, "level"), [])
        # A reading that moves again is good and clears it.
        self.send(tok, code, [(times[3 + raised_at], 1.60)])
        self.assertEqual(self.get(a["id"])["state"], "cleared_unack")


# ---- 7. concurrency ------------------------------------------------------------------------------
class ConcurrencyTest(EwsBase):

    def test_one_open_alert_per_station_and_rule_under_concurrent_ingest(self):
        code = "cc-level"
        tok = self.station(code)
        t0 = int(time.time()) - 3 * 3600
        self.send(tok, code, [(t0 - 3600, 1.00)])
        nthreads, per = 8, 5
        barrier = threading.Barrier(nthreads)
        errors = []

        def run(i):
            conn = self.d.connect()
            try:
                barrier.wait()
                for j in range(per):
                    k = nthreads * j + i  # 2.05 m rising 3 cm a minute: through Siaga at k=33
                    pack = [{"n": code + ":level", "t": t0 + 60 * k,
                             "v": round(2.05 + 0.03 * k, 3)}]
                    r = self.d.request("POST", "/api/v1/ingest", json.dumps(pack), token=tok,
                                       content_type=SENML, conn=conn)
                    if r.status != 200 or r.json["stored"] != 1:
                        errors.append(r)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
            finally:
                conn.close()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(nthreads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        a = self.only(code, "level")  # one alert ever, never a second
        self.assertEqual((a["level"], a["state"]), (2, "active_unack"))
        levels = [h["level"] for h in a["history"]]
        self.assertEqual(levels, sorted(set(levels)), a["history"])
        self.assertEqual(a["history"][0]["msg_type"], "Alert")
        self.assertEqual(len(self.alerts(code, state="open")), len({x["rule"] for x in
                                                                   self.alerts(code)}))

    def test_alert_events_are_not_lost_to_a_concurrent_failed_ack(self):
        # An ack that fails (409) rolls back its own transaction; it must not drop the live
        # events of the rule decisions the writer is committing at the same moment.
        code = "cc-events"
        tok = self.station(code)
        for rule in ("rate_of_rise", "sudden_fall"):
            self.assertEqual(self.put_rule(code, rule, {"enabled": False}).status, 200)
        self.set_params(code, "level", hold_s=0, hysteresis_m=0)
        other = self.station("cc-acked")
        now = int(time.time())
        self.send(other, "cc-acked", [(now - 900, 1.8), (now - 60, 2.5)])
        acked = self.alerts("cc-acked", "level")[0]["id"]
        self.ack(acked)
        sse = SSE(self.d.port, self.admin, "?station=" + code)
        self.addCleanup(sse.close)
        sse.wait_for(lambda f: f.get("retry") == "3000")
        stop = threading.Event()
        reading = threading.Event()

        def read_events():  # keep reading, so the stream never falls behind
            while not reading.is_set():
                sse._fill(time.monotonic() + 0.2)
                sse._parse()

        reader = threading.Thread(target=read_events)
        reader.start()

        def spam():
            conn = self.d.connect()
            try:
                while not stop.is_set():
                    self.d.request("POST", "/api/v1/alerts/%d/ack" % acked, {}, token=self.admin,
                                   conn=conn)
            finally:
                conn.close()

        spammers = [threading.Thread(target=spam) for _ in range(3)]
        for t in spammers:
            t.start()
        try:
            n = 300
            t0 = now - n * 300 - 120
            conn = self.d.connect()
            for i in range(n):  # Waspada and back, every reading
                self.send(tok, code, [(t0 + 300 * i, 2.3 if i % 2 == 0 else 1.2)], conn=conn)
            conn.close()
        finally:
            stop.set()
            for t in spammers:
                t.join()
            reading.set()
            reader.join()
        self.assertNotIn("reset", [f.get("event") for f in sse.frames])
        versions = set()
        for a in self.alerts(code):
            versions |= {(a["id"], h["version"]) for h in self.get(a["id"])["history"]}
        self.assertGreater(len(versions), 300)

        def seen():
            return {(f["json"]["alert"]["id"], f["json"]["alert"]["version"])
                    for f in sse.frames if f.get("event") == "alert"}

        deadline = time.monotonic() + 20
        while not versions <= seen() and time.monotonic() < deadline:
            sse._fill(deadline)
            sse._parse()
        self.assertEqual(sorted(versions - seen()), [],
                         "alert versions that never reached the event stream")


# ---- 8. people on duty ---------------------------------------------------------------------------
class PeopleTest(EwsBase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d, a = cls.d, cls.admin
        _, cls.operator = d.add_user(a, "pp-operator", "operator", "diskominfo")
        _, cls.staff = d.add_user(a, "pp-staff-bpbd", "staff", "bpbd")
        _, cls.other = d.add_user(a, "pp-staff-dlh", "staff", "dlh")
        _, cls.viewer = d.add_user(a, "pp-viewer", "viewer", "bappeda")

    def raised(self, code):
        tok = self.station(code)
        now = int(time.time())
        self.send(tok, code, [(now - 900, 1.8), (now - 60, 2.5)])
        return self.only(code, "level")["id"]

    def test_acknowledge(self):
        aid = self.raised("pp-ack")
        self.assertError(self.ack(aid, "x", token=self.viewer, status=403), 403, "forbidden")
        self.assertError(self.ack(aid, "x", token=self.other, status=404), 404, "not_found")
        self.assertEqual(self.get(aid)["state"], "active_unack")
        a = self.ack(aid, "diterima, tim menuju lokasi", token=self.staff).json
        self.assertEqual((a["state"], a["acked_by"], a["version"]),
                         ("active_ack", "pp-staff-bpbd", 2))
        h = a["history"][-1]
        self.assertEqual((h["msg_type"], h["action"], h["actor"], h["note"], h["state"]),
                         ("Update", "ack", "pp-staff-bpbd", "diterima, tim menuju lokasi",
                          "active_ack"))
        self.assertError(self.ack(aid, token=self.operator, status=409), 409, "conflict")
        # The operator acknowledges another gauge's alert, with no note at all.
        aid2 = self.raised("pp-ack-op")
        r = self.d.request("POST", "/api/v1/alerts/%d/ack" % aid2, token=self.operator)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["state"], r.json["acked_by"]), ("active_ack", "pp-operator"))
        # Bad requests.
        aid3 = self.raised("pp-ack-bad")
        r = self.d.request("POST", "/api/v1/alerts/%d/ack" % aid3, {"nota": "x"}, token=self.admin)
        self.assertError(r, 400, "invalid")
        for bad in ("999999", "abc", "0"):
            r = self.d.request("POST", "/api/v1/alerts/%s/ack" % bad, {}, token=self.admin)
            self.assertError(r, 404, "not_found")
        self.assertEqual(self.get(aid3)["state"], "active_unack")
        # Who did it is in the audit log.
        r = self.d.request("GET", "/api/v1/audit?action=alert.ack&object_id=%d" % aid,
                           token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([i["actor"] for i in r.json["items"]], ["pp-staff-bpbd"])

    def test_shelve(self):
        aid = self.raised("pp-shelve")
        bad = [({}, "'reason'"), ({"minutes": 30}, "'reason'"),
               ({"reason": "", "minutes": 30}, "'reason'"),
               ({"reason": "perawatan"}, "'minutes'"),
               ({"reason": "perawatan", "minutes": 0}, "'minutes'"),
               ({"reason": "perawatan", "minutes": "30"}, "'minutes'"),
               ({"reason": "perawatan", "until": "besok"}, "'until'"),
               ({"reason": "perawatan", "until": "2020-07-13T21:00:00+08:00"}, "'until'"),
               ({"reason": "perawatan", "minutes": 30, "extra": 1}, "'extra'")]
        for body, field in bad:
            r = self.shelve(aid, body)
            self.assertError(r, 400, "invalid")
            self.assertIn(field, r.json["error"]["message"], body)
        self.assertIsNone(self.get(aid)["shelved_until"])
        self.assertEqual(self.shelve(aid, {"reason": "x", "minutes": 5},
                                     token=self.viewer).status, 403)
        self.assertError(self.shelve(aid, {"reason": "x", "minutes": 5}, token=self.other),
                         404, "not_found")
        before = int(time.time())
        r = self.shelve(aid, {"reason": "sensor dibersihkan", "minutes": 30}, token=self.operator)
        self.assertEqual(r.status, 200, r)
        a = r.json
        self.assertEqual(a["shelve_reason"], "sensor dibersihkan")
        self.assertTrue(before + 1800 - 5 <= unix(a["shelved_until"]) <= int(time.time()) + 1805,
                        a["shelved_until"])
        self.assertEqual(a["state"], "active_unack")  # shelving is not acknowledging
        h = a["history"][-1]
        self.assertEqual((h["action"], h["actor"], h["note"]),
                         ("shelve", "pp-operator", "sensor dibersihkan"))
        # Until a given time (WITA), by the owning OPD.
        until = int(time.time()) // 60 * 60 + 7200
        wita = time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(until + 8 * 3600))
        r = self.shelve(aid, {"reason": "banjir surut", "until": wita}, token=self.staff)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["shelved_until"], r.json["shelve_reason"]),
                         (iso(until), "banjir surut"))

    def test_alert_list_and_reads(self):
        aid = self.raised("pp-list")
        r = self.d.request("GET", "/api/v1/alerts?state=sometimes", token=self.admin)
        self.assertError(r, 400, "invalid")
        r = self.d.request("GET", "/api/v1/alerts", token=self.viewer)
        self.assertEqual(r.status, 200, r)
        self.assertIn(aid, [a["id"] for a in r.json])
        self.assertEqual(self.d.request("GET", "/api/v1/alerts").status, 401)
        self.assertEqual(self.get(aid, token=self.viewer)["id"], aid)
        self.assertError(self.d.request("GET", "/api/v1/alerts/999999", token=self.admin), 404)
        a = self.get(aid)
        for k in ("id", "station", "rule", "level", "label", "state", "raised_at", "updated_at",
                  "value"):
            self.assertIn(k, a)


class EscalationTest(EwsBase):
    env = dict(ENV, SINERGI_EWS_ESCALATE_AFTER_S="2")

    def raised(self, code):
        tok = self.station(code)
        now = int(time.time())
        self.send(tok, code, [(now - 900, 1.8), (now - 60, 2.5)])
        return self.only(code, "level")["id"]

    def escalated_to(self, aid, tier, timeout=40):
        return wait_until(lambda: (lambda a: a if a["escalation"] >= tier else None)(
            self.get(aid)), timeout=timeout, what="alert %d to escalate to %d" % (aid, tier))

    def test_unacknowledged_alert_escalates_and_an_acknowledged_one_does_not(self):
        unacked = self.raised("es-open")
        acked = self.raised("es-acked")
        self.ack(acked, "sudah ditangani")
        shelved = self.raised("es-shelved")
        self.assertEqual(self.shelve(shelved, {"reason": "uji", "minutes": 60}).status, 200)
        a = self.escalated_to(unacked, 1)
        self.assertEqual(a["escalation"], 1)
        a = self.escalated_to(unacked, 2)
        self.assertEqual((a["escalation"], a["state"]), (2, "active_unack"))
        esc = [h for h in a["history"] if h["action"] == "escalate"]
        self.assertEqual([(h["actor"], h["note"]) for h in esc],
                         [("rules", "nobody acknowledged: escalated to tier 1"),
                          ("rules", "nobody acknowledged: escalated to tier 2")])
        # Two tiers at most: by the time a later alert has climbed both, the first is still 2.
        late = self.raised("es-late")
        self.escalated_to(late, 2)
        self.assertEqual(self.get(unacked)["escalation"], 2)
        self.assertEqual(self.get(acked)["escalation"], 0)
        self.assertEqual(self.get(shelved)["escalation"], 0)
        # Acknowledging stops it; the alert keeps its tier.
        b = self.ack(unacked).json
        self.assertEqual((b["state"], b["escalation"]), ("active_ack", 2))


# ---- 9. backfill ---------------------------------------------------------------------------------
class BackfillTest(EwsBase):

    def test_backfilled_readings_decide_in_reading_time_and_are_marked(self):
        code = "bf-logger"
        tok = self.station(code)
        t0 = int(time.time()) - 86400 - 3600  # a logger sends yesterday's readings
        self.send(tok, code, series(t0, [1.00, 1.50, 2.10, 2.60, 3.10]))
        a = self.only(code, "level")
        self.assertEqual((a["level"], a["raised_at"], a["updated_at"]),
                         (2, iso(t0 + 2 * STEP), iso(t0 + 4 * STEP)))
        self.assertEqual([(h["level"], h["at"], h["backfill"]) for h in a["history"]],
                         [(1, iso(t0 + 2 * STEP), True), (2, iso(t0 + 4 * STEP), True)])
        # Live readings again: the next decision is live.
        now = int(time.time())
        self.send(tok, code, [(now - 300, 3.50), (now - 60, 4.10)])
        b = self.only(code, "level")
        self.assertEqual(b["id"], a["id"])
        self.assertEqual((b["level"], b["history"][-1]["backfill"], b["history"][-1]["at"]),
                         (3, False, iso(now - 60)))
        self.assertEqual([h["backfill"] for h in b["history"]], [True, True, False])


# ---- 10. live events -----------------------------------------------------------------------------
class EventsTest(EwsBase):

    def test_alert_event_on_the_stream(self):
        code = "ev-alert"
        tok = self.station(code)
        sse = SSE(self.d.port, self.admin, "?station=" + code)
        self.addCleanup(sse.close)
        sse.wait_for(lambda f: f.get("retry") == "3000")
        now = int(time.time())
        self.send(tok, code, [(now - 600, 1.00), (now - 30, 2.50)])
        ev = sse.wait_for(lambda f: f.get("event") == "alert" and
                          f["json"]["alert"]["rule"] == "level")
        j = ev["json"]
        self.assertEqual((j["station"], j["kind"], j["action"], j["actor"]),
                         (code, "water_level", "raised", "rules"))
        self.assertEqual((j["alert"]["rule"], j["alert"]["level"], j["alert"]["label"],
                          j["alert"]["state"], j["alert"]["value"]),
                         ("level", 1, "Waspada (Siaga 3)", "active_unack", 2.5))
        aid = j["alert"]["id"]
        self.ack(aid, "ok")
        ev2 = sse.wait_for(lambda f: f.get("event") == "alert" and f["json"]["alert"]["id"] == aid
                           and f["id"] > ev["id"])
        self.assertEqual((ev2["json"]["action"], ev2["json"]["actor"],
                          ev2["json"]["alert"]["state"]), ("ack", "admin", "active_ack"))


# ---- 11. rules API -------------------------------------------------------------------------------
class RulesApiTest(EwsBase):

    def rules(self, code, token=None):
        r = self.d.request("GET", "/api/v1/stations/%s/rules" % code, token=token or self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["station"], code)
        return {x["rule"]: x for x in r.json["rules"]}

    def test_rules_of_each_kind_with_defaults(self):
        self.station("ru-water")
        self.station("ru-rain", kind="rain")
        _, viewer = self.d.add_user(self.admin, "ru-viewer", "viewer", "bappeda")
        w = self.rules("ru-water", token=viewer)
        self.assertEqual(sorted(w), ["level", "rate_of_rise", "silent", "sudden_fall"])
        self.assertEqual(w["level"]["params"], {"hysteresis_m": 0.1, "hold_s": 3600,
                                                "thresholds_m": [2.0, 3.0, 4.0]})
        self.assertEqual(w["rate_of_rise"]["params"], {"rise_m": 0.5, "window_s": 600,
                                                       "level": 2})
        self.assertEqual(w["sudden_fall"]["params"], {"drop_m": 0.5, "window_s": 1800,
                                                      "rain_mm": 5, "rain_station": ""})
        self.assertEqual(w["silent"]["params"], {"flat_readings": 1})
        self.assertEqual({k: (v["enabled"], v["public"]) for k, v in w.items()},
                         {"level": (True, True), "rate_of_rise": (True, True),
                          "sudden_fall": (True, False), "silent": (True, False)})
        r = self.rules("ru-rain")
        self.assertEqual(sorted(r), ["rain_1h", "rain_24h", "silent"])
        self.assertEqual(r["rain_1h"]["params"], {"thresholds_mm": [20, 30, 50],
                                                  "hysteresis_mm": 2})
        self.assertEqual(r["rain_24h"]["params"], {"thresholds_mm": [50, 100, 150]})
        self.assertEqual(self.d.request("GET", "/api/v1/stations/ru-water/rules").status, 401)
        self.assertError(self.d.request("GET", "/api/v1/stations/ru-nope/rules",
                                        token=self.admin), 404, "not_found")

    def test_put_validates_and_merges(self):
        self.station("ru-put")
        self.station("ru-put-rain", kind="rain")
        for rule, body, name in [
                ("level", {"params": {"hold": 60}}, "'hold'"),
                ("level", {"params": {"hold_s": -5}}, "'hold_s'"),
                ("level", {"params": {"hold_s": 86401}}, "'hold_s'"),
                ("level", {"params": {"hysteresis_m": "0.1"}}, "'hysteresis_m'"),
                ("level", {"params": {"rise_m": 1}}, "'rise_m'"),  # another rule's parameter
                ("rate_of_rise", {"params": {"level": 4}}, "'level'"),
                ("rate_of_rise", {"params": {"level": 2.5}}, "'level'"),
                ("rate_of_rise", {"params": {"window_s": 10}}, "'window_s'"),
                ("silent", {"params": {"flat_readings": 0}}, "'flat_readings'"),
                ("sudden_fall", {"params": {"rain_station": "x" * 40}}, "'rain_station'"),
                ("level", {"params": [1]}, "'params'"),
                ("level", {"enabled": "yes"}, "'enabled'"),
                ("level", {"threshold": 1}, "'threshold'")]:
            r = self.put_rule("ru-put", rule, body)
            self.assertError(r, 400, "invalid")
            self.assertIn(name, r.json["error"]["message"], body)
        for rule, body, name in [
                ("rain_1h", {"params": {"thresholds_mm": [30, 20, 50]}}, "'thresholds_mm'"),
                ("rain_1h", {"params": {"thresholds_mm": [10, 20]}}, "'thresholds_mm'"),
                ("rain_24h", {"params": {"thresholds_mm": [10, 20, 6000]}}, "'thresholds_mm'")]:
            r = self.put_rule("ru-put-rain", rule, body)
            self.assertError(r, 400, "invalid")
            self.assertIn(name, r.json["error"]["message"], body)
        self.assertError(self.put_rule("ru-put", "rain_1h", {"enabled": False}), 404)
        self.assertError(self.put_rule("ru-put", "no_such_rule", {"enabled": False}), 404)
        self.assertError(self.put_rule("ru-nope", "level", {"enabled": False}), 404)
        # Nothing of that was kept.
        self.assertEqual(self.rules("ru-put")["level"]["params"]["hold_s"], 3600)
        # Parameters merge over earlier ones; enabling alone keeps them.
        self.set_params("ru-put", "level", hold_s=1200)
        self.set_params("ru-put", "level", hysteresis_m=0.25)
        self.assertEqual(self.put_rule("ru-put", "level", {"enabled": True}).status, 200)
        p = self.rules("ru-put")["level"]["params"]
        self.assertEqual((p["hold_s"], p["hysteresis_m"]), (1200, 0.25))
        self.set_params("ru-put-rain", "rain_1h", thresholds_mm=[10, 20, 40])
        self.assertEqual(self.rules("ru-put-rain")["rain_1h"]["params"]["thresholds_mm"],
                         [10, 20, 40])
        r = self.d.request("GET", "/api/v1/audit?action=ews.rule_update&object_id=ru-put/level",
                           token=self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json["items"]), 3)

    def test_who_may_edit(self):
        self.station("ru-who")
        _, staff = self.d.add_user(self.admin, "ru-staff-bpbd", "staff", "bpbd")
        _, other = self.d.add_user(self.admin, "ru-staff-dlh", "staff", "dlh")
        _, operator = self.d.add_user(self.admin, "ru-operator", "operator", "bpbd")
        body = {"params": {"hold_s": 1800}}
        self.assertError(self.put_rule("ru-who", "level", body, token=other), 404, "not_found")
        self.assertError(self.put_rule("ru-who", "level", body, token=operator), 403, "forbidden")
        self.assertEqual(self.rules("ru-who")["level"]["params"]["hold_s"], 3600)
        self.assertEqual(self.put_rule("ru-who", "level", body, token=staff).status, 200)
        self.assertEqual(self.rules("ru-who")["level"]["params"]["hold_s"], 1800)

    def test_disabled_rule_raises_nothing_until_enabled(self):
        code = "ru-off"
        tok = self.station(code)
        r = self.put_rule(code, "level", {"enabled": False})
        self.assertEqual(r.status, 200, r)
        self.assertFalse({x["rule"]: x for x in r.json["rules"]}["level"]["enabled"])
        t0 = int(time.time()) - 5 * 3600
        # An hour apart: no rate of rise within 10 minutes either.
        self.send(tok, code, series(t0, [1.00, 2.50, 3.20], step=3600))
        self.assertEqual(self.alerts(code), [])
        self.assertEqual(self.put_rule(code, "level", {"enabled": True}).status, 200)
        self.send(tok, code, series(t0, [3.30], step=3600, start=3))
        a = self.only(code, "level")
        self.assertEqual((a["level"], a["raised_at"]), (2, iso(t0 + 3 * 3600)))


# ---- restart -------------------------------------------------------------------------------------
class RestartTest(unittest.TestCase):

    def test_open_alert_carries_on_after_a_restart(self):
        d = Daemon(env=ENV)
        self.addCleanup(d.cleanup)
        d.start()
        t = EwsBase("run")  # its helpers, on this test's own daemon
        t.d, t.admin = d, d.admin_token()
        tok = t.station("rs-gauge")
        now = int(time.time())
        t.send(tok, "rs-gauge", [(now - 1800, 1.00), (now - 1200, 2.20)])
        a = t.only("rs-gauge", "level")
        self.assertEqual(a["level"], 1)
        self.assertEqual(d.stop(), 0)
        d.start()
        t.admin = d.admin_token()
        # The first reading after the restart is judged, against the alert still open.
        t.send(tok, "rs-gauge", [(now - 600, 3.10)])
        b = t.only("rs-gauge", "level")
        self.assertEqual(b["id"], a["id"])
        self.assertEqual((b["level"], b["state"]), (2, "active_unack"))
        self.assertEqual([s[0] for s in t.steps(b)], ["Alert", "Update"])


if __name__ == "__main__":
    unittest.main()
