"""A real Mosquitto broker for the API tests, and MQTT clients that act as devices or as the
broker's admin.

Broker() runs scripts/mqtt-broker.sh (the same script `make run` uses, with the project's
etc/mosquitto.conf.in) in a temporary directory on a free 127.0.0.1 port. daemon_env() gives the
SINERGI_MQTT_* settings that point a sinergi daemon at it.
"""
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

try:
    import paho.mqtt.client as mqtt
except ImportError:  # a python3 outside Debian's (pyenv, venv): use Debian's python3-paho-mqtt
    sys.path.append("/usr/lib/python3/dist-packages")
    import paho.mqtt.client as mqtt

from tests.api.harness import ROOT, free_port, wait_until

SCRIPT = os.path.join(ROOT, "scripts", "mqtt-broker.sh")
ADMIN_USER = "sinergi.admin"
_ids = itertools.count(1)


class Broker:
    """One mosquitto process with its own directory (config, dynamic security, persistence)."""

    def __init__(self, max_queued=None):
        self.dir = tempfile.mkdtemp(prefix="sinergi-mqtt-")
        self.port = None
        self.max_queued = max_queued

    def _script(self, *args):
        env = dict(os.environ)
        if self.max_queued:
            env["MQTT_MAX_QUEUED"] = str(self.max_queued)
        return subprocess.run([SCRIPT] + list(args), capture_output=True, text=True, env=env,
                              timeout=60)

    def start(self):
        self.port = self.port or free_port()
        p = self._script("start", self.dir, str(self.port))
        if p.returncode != 0:
            raise AssertionError("broker did not start: %s %s\n%s" % (p.stdout, p.stderr,
                                                                       self.log_tail()))
        return self

    def stop(self):
        p = self._script("stop", self.dir)
        if p.returncode != 0:
            raise AssertionError("broker did not stop: " + p.stderr)

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=4000):
        try:
            with open(os.path.join(self.dir, "mosquitto.log")) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    @property
    def password_file(self):
        return os.path.join(self.dir, "admin.pw")

    def daemon_env(self, spool_dir):
        return {"SINERGI_MQTT_ENABLED": "1", "SINERGI_MQTT_HOST": "127.0.0.1",
                "SINERGI_MQTT_PORT": str(self.port),
                "SINERGI_MQTT_PASSWORD_FILE": self.password_file,
                "SINERGI_MQTT_SPOOL_DIR": spool_dir}

    def admin(self):
        with open(self.password_file) as f:
            pw = f.read().strip()
        return Admin(self.port, pw)


class Client:
    """A paho client with its network loop in a thread; connect() returns the CONNACK code."""

    def __init__(self, port, username, password, client_id=None, clean_session=True):
        self.port = port
        self.c = mqtt.Client(client_id=client_id or "test-%s-%d" % (username, next(_ids)),
                             clean_session=clean_session)
        self.c.username_pw_set(username, password)
        self.c.max_inflight_messages_set(200)
        self.connack = None
        self.acked = set()
        self.granted = {}
        self.messages = []
        self.lock = threading.Lock()
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, rc):
        self.connack = rc

    def _on_publish(self, client, userdata, mid):
        with self.lock:
            self.acked.add(mid)

    def _on_subscribe(self, client, userdata, mid, granted):
        self.granted[mid] = granted

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    def connect(self, timeout=10):
        self.c.connect("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        wait_until(lambda: self.connack is not None, timeout, what="CONNACK")
        if self.connack != 0:  # refused: stop paho from retrying
            self.c.loop_stop()
            self.c.disconnect()
        return self.connack

    def publish(self, topic, payload, qos=1):
        info = self.c.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError("publish failed: %s" % mqtt.error_string(info.rc))
        return info

    def publish_acked(self, topic, payload, qos=1, timeout=10):
        """Publishes and waits until the broker has it (PUBACK for QoS 1, sent for QoS 0)."""
        info = self.publish(topic, payload, qos)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise AssertionError("the broker did not acknowledge a QoS %d message" % qos)
        return info

    def subscribe(self, topic, qos=1, timeout=10):
        """Returns the granted QoS (128 when refused)."""
        rc, mid = self.c.subscribe(topic, qos)
        wait_until(lambda: mid in self.granted, timeout, what="SUBACK")
        return self.granted[mid][0]

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class Admin(Client):
    """The dynamic-security admin: sends commands, returns the responses."""

    def __init__(self, port, password):
        super().__init__(port, ADMIN_USER, password)
        self._n = itertools.count(1)
        if self.connect() != 0:
            raise AssertionError("the broker refused its admin")
        self.subscribe("$CONTROL/dynamic-security/v1/response")

    def dynsec(self, *commands, timeout=10):
        corr = "test-%d" % next(self._n)
        cmds = [dict(c, correlationData=corr) for c in commands]
        self.publish_acked("$CONTROL/dynamic-security/v1", json.dumps({"commands": cmds}))

        def answer():
            with self.lock:
                for topic, payload in self.messages:
                    r = json.loads(payload)["responses"]
                    if r and r[0].get("correlationData") == corr:
                        return r
            return None
        return wait_until(answer, timeout, what="dynamic-security response")

    def clients(self):
        return self.dynsec({"command": "listClients", "count": -1})[0]["data"]["clients"]

    def roles(self):
        return self.dynsec({"command": "listRoles", "count": -1})[0]["data"]["roles"]

    def role_acls(self, role):
        r = self.dynsec({"command": "getRole", "rolename": role})[0]
        return r["data"]["role"]["acls"]
