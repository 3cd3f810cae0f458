"""WebSub through the real bot in webhook mode (issue 24 item 4, SPEC §9 "Push"): a feed that
names a hub is subscribed there, the hub's pushes reach readers within the push, bad pushes
change nothing, a hub that goes away or a lease that lapses falls back to polling, and a
removed source is unsubscribed at its hub."""

from __future__ import annotations

import http.client
import os
import random
import socket
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from news.hubs import sign
from tests.conftest import BotProcess
from tests.fakes.feeds import FeedServer, atom, rss
from tests.fakes.hub import STALL, HubEmulator, push
from tests.fakes.telegram import BotApiEmulator
from tests.harness import ADMIN_ID, BASELINE, READER_ID, TOKEN, env_for, wait_until

SECRET = "websub_webhook-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Bot:
    """A bot in webhook mode, an admin and a reader who follows "Quasar"."""

    def __init__(self, tmp_path: Path, bot_process: type[BotProcess], telegram: BotApiEmulator,
                 env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.telegram = telegram
        self.process = bot_process(tmp_path, env_for(telegram, f"sqlite:///{tmp_path / 'w.db'}")
                                   | {"WEBHOOK_URL": f"{self.base}/telegram",
                                      "WEBHOOK_SECRET": SECRET, "WEBHOOK_LISTEN": "127.0.0.1",
                                      "WEBHOOK_PORT": str(self.port), "LOG_LEVEL": "INFO"}
                                   | env).start()
        self.process.wait_for_log("receiving updates by webhook")
        self.admin = telegram.user(ADMIN_ID, "Ada")
        self.admin_chat = telegram.private_chat(self.admin)
        self.reader = telegram.user(READER_ID, "Mo")
        self.chat = telegram.private_chat(self.reader)

    def say(self, chat: dict[str, Any], user: dict[str, Any], text: str) -> str:
        before = len(self.telegram.messages(chat["id"]))
        self.telegram.send_text(chat, user, text)
        assert self.telegram.deliver_webhook() == 200
        return self.telegram.wait_for_messages(chat["id"], before + 1, timeout=20)[before].text

    def admin_says(self, text: str) -> str:
        return self.say(self.admin_chat, self.admin, text)

    def alerts(self) -> list[str]:
        return [m.text for m in self.telegram.messages(self.chat["id"]) if "Quasar" in m.text
                and "/subscribe" not in m.text and "Following" not in m.text]

    def alert_time(self, title: str, timeout: float = 30.0) -> float:
        """When (time.monotonic()) the alert naming `title` was sent to the reader."""
        wait_until(lambda: any(title in text for text in self.alerts()), timeout=timeout)
        messages = self.telegram.messages(self.chat["id"])
        index = next(i for i, m in enumerate(messages) if title in m.text)
        return self.telegram.send_times(self.chat["id"])[index]


WORDS = ["harbour", "violin", "glacier", "tram", "orchard", "lantern", "comet", "meadow",
         "bakery", "canyon", "ferry", "quarry", "tundra", "vineyard", "atlas", "beacon"]


def entry(kind: str, n: int) -> dict[str, Any]:
    """An entry no other entry of the test resembles (alike ones would make one story)."""
    start = sum(map(ord, kind)) + n * 5
    words = [WORDS[(start + i) % len(WORDS)] for i in range(5)]
    return {"title": f"Quasar {kind} bulletin number {n}: {words[0]} and {words[1]}",
            "guid": f"{kind}-{n}",
            "link": f"http://news.test/{kind}/{n}",
            "description": f"{kind.capitalize()} {n}: {' '.join(words)} {kind} {n * 7919}.",
            "pub_date": datetime(2026, 12, 1, n % 24, tzinfo=UTC)}


def wait_for_subscriber(hub: HubEmulator, topic: str, since: int = 0) -> None:
    wait_until(lambda: len([v for v in hub.verifications if v.topic == topic and v.echoed])
               > since and hub.subscriber(topic) is not None, timeout=30)


# Stories published per source: 2 in the suite; TIDINGS_WEBSUB_SAMPLES=4 for the README's figures.
SAMPLES = int(os.environ.get("TIDINGS_WEBSUB_SAMPLES", "2"))


def test_a_pushed_source_alerts_within_the_push_and_a_polled_one_at_its_next_poll(
    tmp_path: Path, bot_process: type[BotProcess],
) -> None:
    """Publish-to-alert time, end to end, for a source whose hub pushes and for one polled
    every 10 s (the figures are printed for the README; no time is asserted)."""
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds, \
            HubEmulator(lease_seconds=3600) as hub:
        pushed_url, polled_url = feeds.url("/pushed.xml"), feeds.url("/polled.xml")
        pushed_entries, polled_entries = list(BASELINE), list(BASELINE)

        def pushed_feed() -> str:
            return atom("Pushed News", pushed_entries, hub=hub.url, self_url=pushed_url)

        feeds.put("/pushed.xml", pushed_feed(), "application/atom+xml")
        feeds.put("/polled.xml", rss("Polled News", polled_entries))
        bot = Bot(tmp_path, bot_process, telegram,
                  {"POLL_INTERVAL_SECONDS": "10", "WEBSUB_POLL_INTERVAL_SECONDS": "3600"})
        assert "#1" in bot.admin_says(f"/addsource {pushed_url}")
        assert "#2" in bot.admin_says(f"/addsource {polled_url}")
        wait_for_subscriber(hub, pushed_url)
        form = hub.subscribe_requests(pushed_url)[0]
        assert form["hub.callback"].startswith(f"{bot.base}/websub/")
        assert hub.subscribe_requests(polled_url) == [], "a feed without a hub is only polled"
        wait_until(lambda: "pushed by 127.0.0.1" in bot.admin_says("/sources"), timeout=20)
        listing = bot.admin_says("/sources")
        assert "every 3600 s as a safety net" in listing
        assert listing.count("📡") == 1, listing
        bot.say(bot.chat, bot.reader, "/subscribe Quasar")

        pushed, polled, phase = [], [], random.Random(24)
        for n in range(SAMPLES):
            pushed_entries.insert(0, entry("pushed", n))
            body = pushed_feed()
            feeds.put("/pushed.xml", body, "application/atom+xml")
            published = time.monotonic()
            assert hub.publish(pushed_url, body.encode()) == [200]
            pushed.append(bot.alert_time(f"pushed bulletin number {n}") - published)

            # Published at a random moment of the poll's 10 s cycle, as a publisher would:
            # right after the last alert, it would fall at the same point of the cycle each time.
            time.sleep(phase.uniform(0, 10))
            polled_entries.insert(0, entry("polled", n))
            feeds.put("/polled.xml", rss("Polled News", polled_entries))
            published = time.monotonic()
            polled.append(bot.alert_time(f"polled bulletin number {n}") - published)
        print(f"\npublish-to-alert, pushed (WebSub): {[round(s, 2) for s in pushed]} s, "
              f"mean {statistics.mean(pushed):.2f} s")
        print(f"publish-to-alert, polled every 10 s: {[round(s, 2) for s in polled]} s, "
              f"mean {statistics.mean(polled):.2f} s")
        assert len(bot.alerts()) == 2 * SAMPLES, "each story alerted once"
        assert telegram.rejected == [] and "Traceback" not in bot.process.log
        assert bot.process.terminate() == 0


def post(url: str, body: bytes, headers: dict[str, str]) -> int | None:
    """A raw POST; None when the bot hung up before answering (refused on the headers)."""
    host, _, rest = url.removeprefix("http://").partition("/")
    connection = http.client.HTTPConnection(host, timeout=30)
    try:
        connection.putrequest("POST", "/" + rest)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders()
        for start in range(0, len(body), 1 << 20):
            connection.send(body[start:start + (1 << 20)])
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def get(url: str) -> int:
    host, _, rest = url.removeprefix("http://").partition("/")
    connection = http.client.HTTPConnection(host, timeout=30)
    try:
        connection.request("GET", "/" + rest)
        return connection.getresponse().status
    finally:
        connection.close()


def test_pushes_without_the_subscriptions_signature_change_nothing(
    tmp_path: Path, bot_process: type[BotProcess],
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds, HubEmulator() as hub:
        topic, entries = feeds.url("/feed.xml"), list(BASELINE)
        feeds.put("/feed.xml", rss("News", entries, hub=hub.url, self_url=topic))
        bot = Bot(tmp_path, bot_process, telegram, {"WEBSUB_POLL_INTERVAL_SECONDS": "3600"})
        bot.admin_says(f"/addsource {topic}")
        wait_for_subscriber(hub, topic)
        subscriber = hub.subscriber(topic)
        assert subscriber is not None
        callback, secret = subscriber.callback, subscriber.secret
        bot.say(bot.chat, bot.reader, "/subscribe Quasar")

        entries.insert(0, entry("forged", 1))
        body = rss("News", entries).encode()
        assert push(callback, body, sign(body, "not-the-secret"), "application/rss+xml",
                    topic, hub.url) == 403
        assert push(callback, body, None, "application/rss+xml", topic, hub.url) == 403
        assert push(callback, body, "md5=" + "0" * 32, "application/rss+xml", topic,
                    hub.url) == 403
        unknown = callback.rsplit("/", 1)[0] + "/NotASubscription"
        assert push(unknown, body, sign(body, secret), "application/rss+xml", topic,
                    hub.url) == 404
        assert post(unknown, b"x" * (8 << 20), {"X-Hub-Signature": sign(body, secret)}) \
            in (404, None), "an unknown callback is refused before its body is read"
        assert post(callback, b"x" * (2 << 20), {"X-Hub-Signature": sign(body, secret)}) \
            in (400, 413, None), "a push past 1 MB is refused"
        # Verifications nobody asked for, or for another topic, are refused.
        challenge = {"hub.challenge": "c", "hub.lease_seconds": "60"}
        assert get(f"{callback}?" + urlencode(
            {"hub.mode": "subscribe", "hub.topic": "http://evil.test/"} | challenge)) == 404
        assert get(f"{callback}?" + urlencode(
            {"hub.mode": "unsubscribe", "hub.topic": topic} | challenge)) == 404
        assert get(f"{unknown}?" + urlencode(
            {"hub.mode": "subscribe", "hub.topic": topic} | challenge)) == 404

        # The same entries signed as the hub signs them (sha1 too) are alerted, once.
        assert push(callback, body, sign(body, secret, "sha1"), "application/rss+xml", topic,
                    hub.url) == 200
        wait_until(lambda: len(bot.alerts()) == 1, timeout=20)
        assert hub.publish(topic, body, method="sha512") == [200]
        # A push that is no feed is a ping: the feed is polled now.
        hits = feeds.hits("/feed.xml")
        assert push(callback, b"updated", sign(b"updated", secret), "text/plain", topic,
                    hub.url) == 200
        wait_until(lambda: feeds.hits("/feed.xml") > hits)

        # The hub takes the subscription back: the source is polled as usual, and /sources
        # says why.
        assert hub.deny(topic, "publisher opted out") == 200
        wait_until(lambda: "refused the subscription" in bot.admin_says("/sources"))
        assert "publisher opted out" in bot.admin_says("/sources")
        assert len(bot.alerts()) == 1, bot.alerts()
        log = bot.process.log
        assert "failed its signature check" in log and secret not in log
        assert telegram.rejected == [] and "Traceback" not in log


def test_a_hub_that_goes_away_or_a_lapsed_lease_fall_back_to_polling(
    tmp_path: Path, bot_process: type[BotProcess],
) -> None:
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds, \
            HubEmulator(lease_seconds=4) as hub:
        topic, entries = feeds.url("/feed.xml"), list(BASELINE)
        feeds.put("/feed.xml", rss("News", entries, hub=hub.url, self_url=topic))
        bot = Bot(tmp_path, bot_process, telegram,
                  {"POLL_INTERVAL_SECONDS": "2", "WEBSUB_POLL_INTERVAL_SECONDS": "3600",
                   "WEBSUB_RETRY_SECONDS": "1"})
        bot.admin_says(f"/addsource {topic}")
        wait_for_subscriber(hub, topic)
        bot.say(bot.chat, bot.reader, "/subscribe Quasar")
        # Renewed before it lapses: a 4 s lease is asked for again within it, and verified.
        verified = len(hub.verifications)
        wait_until(lambda: len(hub.verifications) > verified + 1, timeout=20)
        assert "pushed by 127.0.0.1" in bot.admin_says("/sources")
        entries.insert(0, entry("unpushed", 1))  # in the feed, never pushed: not polled now
        feeds.put("/feed.xml", rss("News", entries, hub=hub.url, self_url=topic))
        hits = feeds.hits("/feed.xml")

        hub.go_down()
        wait_until(lambda: "hub 127.0.0.1 failing" in bot.admin_says("/sources"), timeout=20)
        bot.alert_time("unpushed bulletin number 1", timeout=20)  # polled again, every 2 s
        assert feeds.hits("/feed.xml") > hits

        hub.come_back()
        requests = len(hub.subscribe_requests(topic))
        wait_for_subscriber(hub, topic, since=len(
            [v for v in hub.verifications if v.echoed]))
        assert len(hub.subscribe_requests(topic)) > requests
        wait_until(lambda: "pushed by 127.0.0.1" in bot.admin_says("/sources"), timeout=20)

        hub.verify = False  # renewals are accepted and never verified: the lease lapses
        wait_until(lambda: "lapsed" in bot.admin_says("/sources"), timeout=20)
        entries.insert(0, entry("lapsed", 2))
        feeds.put("/feed.xml", rss("News", entries, hub=hub.url, self_url=topic))
        bot.alert_time("lapsed bulletin number 2", timeout=20)
        assert [text.count("Quasar unpushed") + text.count("Quasar lapsed")
                for text in bot.alerts()] == [1, 1]
        log = bot.process.log
        assert "leases lapsed unrenewed" in log
        assert telegram.rejected == [] and "Traceback" not in log


def test_a_removed_source_is_unsubscribed_at_its_hub_and_its_pushes_alert_nobody(
    tmp_path: Path, bot_process: type[BotProcess],
) -> None:
    """/removesource answers at once; the websub job then asks the hub to unsubscribe, through
    a hang and a 503, until the hub verifies it and stops pushing. A push that comes meanwhile
    is acknowledged (the hub would send it again otherwise) and alerts nobody."""
    with BotApiEmulator(token=TOKEN) as telegram, FeedServer() as feeds, HubEmulator() as hub:
        topic, entries = feeds.url("/feed.xml"), list(BASELINE)
        marker_url, marker_entries = feeds.url("/marker.xml"), list(BASELINE)
        feeds.put("/feed.xml", rss("News", entries, hub=hub.url, self_url=topic))
        feeds.put("/marker.xml", rss("Marker", marker_entries))
        bot = Bot(tmp_path, bot_process, telegram,
                  {"POLL_INTERVAL_SECONDS": "2", "WEBSUB_POLL_INTERVAL_SECONDS": "3600",
                   "WEBSUB_RETRY_SECONDS": "1", "FETCH_TIMEOUT_SECONDS": "3"})
        assert "#1" in bot.admin_says(f"/addsource {topic}")
        assert "#2" in bot.admin_says(f"/addsource {marker_url}")
        wait_for_subscriber(hub, topic)
        subscriber = hub.subscriber(topic)
        assert subscriber is not None
        callback, secret = subscriber.callback, subscriber.secret
        bot.say(bot.chat, bot.reader, "/subscribe Quasar")
        entries.insert(0, entry("pushed", 1))
        assert hub.publish(topic, rss("News", entries).encode()) == [200]
        bot.alert_time("pushed bulletin number 1")

        hub.stall_seconds = 10
        hub.fail_next(STALL, 503)  # a hub that hangs, then one that is overloaded
        assert "Removed source #1" in bot.admin_says("/removesource 1")
        entries.insert(0, entry("removed", 2))
        body = rss("News", entries).encode()
        assert push(callback, body, sign(body, secret), "application/rss+xml", topic,
                    hub.url) == 204, "acknowledged, so the hub does not send it again"

        wait_until(lambda: any(v.mode == "unsubscribe" and v.echoed
                               for v in hub.verifications), timeout=30)
        assert hub.subscriber(topic) is None
        forms = hub.unsubscribe_requests(topic)
        assert len(forms) == 3, "tried again after the hang and the 503, then no more"
        assert {form["hub.callback"] for form in forms} == {callback}
        assert hub.publish(topic, body) == [], "the hub pushes it nothing more"
        assert push(callback, body, sign(body, secret), "application/rss+xml", topic,
                    hub.url) == 204, "a push already on its way is still acknowledged"

        # A later story of the polled source is alerted: the removed one's would have been
        # stored before its push was answered, and alerted first.
        marker_entries.insert(0, entry("marker", 3))
        feeds.put("/marker.xml", rss("Marker", marker_entries))
        bot.alert_time("marker bulletin number 3")
        assert not any("removed bulletin" in text for text in bot.alerts()), bot.alerts()
        assert len(hub.unsubscribe_requests(topic)) == 3
        log = bot.process.log
        assert "the hub confirmed it stops pushing" in log
        assert "was acknowledged and ignored" in log
        assert telegram.rejected == [] and "Traceback" not in log
