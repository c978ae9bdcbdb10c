"""The call engine behind the simulated ARI: channels, bridges, endpoints, Stasis apps, and the events they make.

Event sequences follow the Asterisk 22 recordings in shared/traces/asterisk (traces 11, 12, 29-34); where a case is
not recorded (a busy phone, a decline under ARI), they follow Asterisk's source (main/dial.c: a leg that hangs up
while dialled gets a final Dial event whose status comes from its hangup cause; a leg that times out gets none).

Which apps receive an event is sim/ari_apps.py's business; this module decides what happens and in which order.

REST methods raise AriRestError (status + Asterisk's JSON body); the server turns it into the HTTP answer.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from callbuddy_pbx.sim.ari_apps import StasisApps
from callbuddy_pbx.sim.ari_model import (
    ALL_DEVICES,
    ASTERISK_ID,
    CAUSE_TEXT,
    HANGUP_REASONS,
    SOFT_HANGUP_EXPLICIT,
    AriRestError,
    PhoneBehaviour,
    SimApp,
    SimBridge,
    SimChannel,
    SimContact,
    SimEndpoint,
    ari_time,
    dial_status_for,
    not_found,
)
from callbuddy_pbx.sim.mobile_phones import MobilePhones, MobileSoftphone

Deliver = Callable[[str, dict[str, Any]], None]  # (app name, event): the server writes it to the app's socket
_EVENT_SCHEMES = ("channel:", "bridge:", "endpoint:", "deviceState:")


class AriPbx:
    """A small PBX as ARI sees it: a trunk and desk phones (100, 101 registered, 102 not, as in the traces)."""

    def __init__(self, deliver: Deliver, *, default_app: str = "callbuddy") -> None:
        self._deliver = deliver
        self.default_app = default_app
        self.registry = StasisApps()
        self.apps = self.registry.by_name  # name -> SimApp, for inspection
        self.endpoints: dict[str, SimEndpoint] = {}
        self.channels: dict[str, SimChannel] = {}
        self.bridges: dict[str, SimBridge] = {}
        self.device_states: dict[str, str] = {}  # last DeviceStateChanged per device
        self.started = time.time()
        self._epoch = int(self.started)
        self._seq = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.events_published = 0
        self.stasis_failures = 0  # inbound calls whose Stasis() found no active app (the dialplan's fail-open path)
        for number in ("100", "101", "102"):
            self.add_endpoint(number)
        self.add_endpoint("trunk", "", context="from-trunk", static=True)
        for number in ("100", "101"):  # registered before the recordings started
            self.endpoints[number].contacts.append(SimContact(_default_contact(number)))
            self.device_states[f"PJSIP/{number}"] = "NOT_INUSE"
        self.mobiles = MobilePhones(self.register, self.unregister)

    # -- publishing -------------------------------------------------------------------------------------------------

    def _emit(
        self,
        event_type: str,
        body: Mapping[str, Any],
        *,
        channels: Sequence[SimChannel] = (),
        bridge: SimBridge | None = None,
        endpoint: SimEndpoint | None = None,
        endpoint_for_all: bool = True,
        device: str | None = None,
        only_app: str | None = None,
    ) -> None:
        event: dict[str, Any] = {"type": event_type, "timestamp": ari_time(), **body}
        self.events_published += 1
        recipients = self.registry.recipients(
            channels=channels,
            bridge=bridge,
            endpoint=endpoint,
            endpoint_for_all=endpoint_for_all,
            device=device,
            only_app=only_app,
        )
        for app in recipients:
            self._deliver(app.name, {**event, "asterisk_id": ASTERISK_ID, "application": app.name})

    def _channel_event(self, event_type: str, channel: SimChannel, **fields: Any) -> None:
        self._emit(event_type, {**fields, "channel": channel.to_json()}, channels=[channel])

    def _varset(self, channel: SimChannel, variable: str, value: str) -> None:
        self._emit(
            "ChannelVarset",
            {"variable": variable, "value": value, "channel": channel.to_json()},
            channels=[channel],
        )

    def _dial(
        self, peer: SimChannel, status: str, caller: SimChannel | None = None, dialstring: str | None = None
    ) -> None:
        dialstring = peer.dial_string if dialstring is None else dialstring
        body: dict[str, Any] = {"dialstatus": status, "forward": "", "dialstring": dialstring}
        if caller is not None:
            body["caller"] = caller.to_json()
        body["peer"] = peer.to_json()
        self._emit("Dial", body, channels=[peer] if caller is None else [caller, peer])

    def _endpoint_changed(self, endpoint: SimEndpoint) -> None:
        self._emit("EndpointStateChange", {"endpoint": endpoint.to_json()}, endpoint=endpoint, endpoint_for_all=False)

    def _device_state(self, endpoint: SimEndpoint) -> str:
        live = [self.channels[i] for i in endpoint.channel_ids if i in self.channels]
        live = [channel for channel in live if not channel.gone and not channel.hanging_up]
        if any(channel.state == "Up" or (channel.state == "Ring" and not channel.inbound) for channel in live):
            return "INUSE"
        if any(channel.state == "Ringing" for channel in live):
            return "RINGING"
        return "NOT_INUSE" if endpoint.online else "UNAVAILABLE"

    def _update_device(self, endpoint: SimEndpoint) -> None:
        state = self._device_state(endpoint)
        if self.device_states.get(endpoint.name) != state:
            self.device_states[endpoint.name] = state
            self._emit(
                "DeviceStateChanged", {"device_state": {"name": endpoint.name, "state": state}}, device=endpoint.name
            )

    # -- endpoints and phones (scenario controls) -------------------------------------------------------------------

    def add_endpoint(
        self, resource: str, caller_name: str | None = None, *, context: str = "from-internal", static: bool = False
    ) -> SimEndpoint:
        """A PJSIP endpoint (unregistered unless `static`); caller_name defaults to "Desk <resource>"."""
        name = f"Desk {resource}" if caller_name is None else caller_name
        endpoint = SimEndpoint(resource, name, context, static=static)
        self.endpoints[resource] = endpoint
        self.device_states.setdefault(endpoint.name, self._device_state(endpoint))
        return endpoint

    def endpoint(self, resource: str) -> SimEndpoint:
        try:
            return self.endpoints[resource]
        except KeyError:
            raise KeyError(f"no endpoint {resource!r} in the simulated PBX") from None

    def register(self, resource: str, uri: str | None = None) -> None:
        """A phone REGISTERs. First contact: EndpointStateChange online, PeerStatusChange Reachable,
        ContactStatusChange NonQualified, DeviceStateChanged NOT_INUSE (trace 33's order)."""
        endpoint = self.endpoint(resource)
        uri = uri or _default_contact(resource)
        if any(contact.uri == uri for contact in endpoint.contacts):
            return  # a refresh: no events
        was_online = endpoint.online
        contact = SimContact(uri)
        endpoint.contacts.append(contact)
        if not was_online:
            self._endpoint_changed(endpoint)
            self._peer_status(endpoint, "Reachable")
        self._contact_status(endpoint, contact, contact.status)
        self._update_device(endpoint)

    def unregister(self, resource: str, uri: str | None = None) -> None:
        """The phone un-REGISTERs (or its registration expires). Last contact gone: DeviceStateChanged UNAVAILABLE,
        EndpointStateChange offline, PeerStatusChange Unreachable, ContactStatusChange Removed (trace 33)."""
        endpoint = self.endpoint(resource)
        removed = [contact for contact in endpoint.contacts if uri is None or contact.uri == uri]
        if not removed:
            return
        endpoint.contacts = [contact for contact in endpoint.contacts if contact not in removed]
        if not endpoint.online:
            self._update_device(endpoint)
            self._endpoint_changed(endpoint)
            self._peer_status(endpoint, "Unreachable")
        for contact in removed:
            self._contact_status(endpoint, contact, "Removed")

    def _peer_status(self, endpoint: SimEndpoint, status: str) -> None:
        self._emit(
            "PeerStatusChange", {"endpoint": endpoint.to_json(), "peer": {"peer_status": status}}, endpoint=endpoint
        )

    def _contact_status(self, endpoint: SimEndpoint, contact: SimContact, status: str) -> None:
        info = {"uri": contact.uri, "contact_status": status, "aor": endpoint.resource, "roundtrip_usec": "0"}
        self._emit("ContactStatusChange", {"endpoint": endpoint.to_json(), "contact_info": info}, endpoint=endpoint)

    def set_phone(self, resource: str, behaviour: PhoneBehaviour) -> None:
        self.endpoint(resource).phone = behaviour

    def add_mobile(self, phone: MobileSoftphone, caller_name: str | None = None) -> MobileSoftphone:
        """A mobile softphone on its own endpoint (made if missing), registered with its push Contact URI."""
        if phone.resource not in self.endpoints:
            self.add_endpoint(phone.resource, caller_name or f"Mobile {phone.resource}")
        return self.mobiles.add(phone)

    # -- apps and subscriptions -------------------------------------------------------------------------------------

    def application_json(self, name: str) -> dict[str, Any]:
        return self.registry.require(name).to_json()

    def subscribe(self, name: str, sources: Sequence[str]) -> dict[str, Any]:
        app = self.registry.require(name)
        return self.registry.subscribe(app, self._parse_sources(sources))

    def unsubscribe(self, name: str, sources: Sequence[str]) -> dict[str, Any]:
        app = self.registry.require(name)
        return self.registry.unsubscribe(app, self._parse_sources(sources))

    def _parse_sources(self, sources: Sequence[str]) -> list[tuple[str, str]]:
        if not sources:
            raise AriRestError(400, "Missing parameter eventSource")
        parsed = []
        for source in sources:
            scheme = next((s for s in _EVENT_SCHEMES if source.startswith(s)), None)
            if scheme is None:
                raise AriRestError(400, "Invalid event source URI scheme")
            target = source[len(scheme) :]
            if scheme == "channel:" and target not in self.channels:
                raise AriRestError(422, "Event source does not exist")
            if scheme == "bridge:" and target not in self.bridges:
                raise AriRestError(422, "Event source does not exist")
            if scheme == "endpoint:":
                tech, _, resource = target.partition("/")
                known = tech == "PJSIP" and (not resource or resource in self.endpoints)
                if not known:
                    raise AriRestError(422, "Event source does not exist")
            if scheme == "deviceState:" and not target:
                target = ALL_DEVICES  # res_stasis_device_state: an empty name means every device
            parsed.append((scheme, target))
        return parsed

    # -- channels: lookups ------------------------------------------------------------------------------------------

    def _channel(self, channel_id: str) -> SimChannel:
        channel = self.channels.get(channel_id)
        if channel is None or channel.gone:
            raise not_found("Channel")
        return channel

    def _in_stasis(self, channel_id: str) -> SimChannel:
        channel = self._channel(channel_id)
        if channel.stasis_app is None:
            raise AriRestError(409, "Channel not in Stasis application")
        return channel

    def channel_json(self, channel_id: str) -> dict[str, Any]:
        return self._channel(channel_id).to_json()

    def channels_json(self) -> list[dict[str, Any]]:
        return [channel.to_json() for channel in reversed(self.channels.values())]  # newest first, as recorded

    def _new_channel(self, endpoint: SimEndpoint, **fields: Any) -> SimChannel:
        number = next(self._seq)
        channel_id = fields.pop("channel_id", None) or f"{self._epoch}.{number}"
        channel = SimChannel(id=channel_id, name=f"{endpoint.name}-{number:08x}", endpoint=endpoint, **fields)
        self.channels[channel.id] = channel
        endpoint.channel_ids.append(channel.id)
        self._endpoint_changed(endpoint)  # before ChannelCreated, as recorded (33)
        self._channel_event("ChannelCreated", channel)
        return channel

    def _destroy(self, channel: SimChannel, cause: int, tech_cause: int | None = None) -> None:
        if channel.gone:
            return
        channel.cancel_timers()
        channel.hanging_up = True
        body: dict[str, Any] = {"cause": cause, "cause_txt": CAUSE_TEXT.get(cause, "Unknown")}
        if tech_cause is not None:
            body["tech_cause"] = tech_cause
        self._channel_event("ChannelDestroyed", channel, **body)
        channel.gone = True
        self.channels.pop(channel.id, None)
        for app in self.apps.values():
            if channel.id in app.channel_ids:
                app.channel_ids.remove(channel.id)
        endpoint = channel.endpoint
        if channel.id in endpoint.channel_ids:
            endpoint.channel_ids.remove(channel.id)
            self._endpoint_changed(endpoint)
        self._update_device(endpoint)

    # -- inbound calls (scenario controls) --------------------------------------------------------------------------

    def inbound_call(
        self,
        did: str = "15550001001",
        caller_number: str = "15557654321",
        caller_name: str = "Jane Caller",
        *,
        app: str | None = None,
        args: Sequence[str] | None = None,
    ) -> str:
        """A call from the trunk reaches `Stasis(app,inbound,<did>)`. Returns the caller's channel id. With no
        active app Stasis() fails (STASISSTATUS=FAILED, no ARI event at all, trace 32): the channel then stays in
        the dialplan (its fail-open ring group) until the caller hangs up."""
        app_name = app or self.default_app
        stasis_args = list(args) if args is not None else ["inbound", did]
        number = next(self._seq)
        trunk = self.endpoints["trunk"]
        channel = self._new_channel(
            trunk,
            state="Ring",
            protocol_id=f"1-{20000 + number}@127.0.0.1",
            caller={"name": caller_name, "number": caller_number},
            connected={"name": "", "number": ""},
            dialplan={"context": "from-trunk", "exten": did, "priority": 1, "app_name": "", "app_data": ""},
            inbound=True,
        )
        app_data = ",".join([app_name, *stasis_args])
        channel.dialplan.update(priority=2, app_name="Stasis", app_data=app_data)
        self._channel_event("ChannelDialplan", channel, dialplan_app="Stasis", dialplan_app_data=app_data)
        self._varset(channel, "STASISSTATUS", "")
        target = self.apps.get(app_name)
        if target is None or not target.active:
            self.stasis_failures += 1
            self._varset(channel, "STASISSTATUS", "FAILED")
            channel.dialplan.update(priority=4, app_name="Dial", app_data="(fail-open ring group)")
            return channel.id
        self._enter_stasis(channel, target, stasis_args)
        return channel.id

    def in_stasis(self, channel_id: str) -> bool:
        channel = self.channels.get(channel_id)
        return channel is not None and channel.stasis_app is not None

    def _enter_stasis(self, channel: SimChannel, app: SimApp, args: list[str]) -> None:
        if channel.id not in app.channel_ids:
            app.channel_ids.append(channel.id)
        channel.stasis_app = app.name
        channel.was_in_stasis = True
        self._emit("StasisStart", {"args": args, "channel": channel.to_json()}, channels=[channel], only_app=app.name)

    def _stasis_end(self, channel: SimChannel) -> None:
        app_name, channel.stasis_app = channel.stasis_app, None
        if app_name is None:
            return
        self._emit("StasisEnd", {"channel": channel.to_json()}, channels=[channel], only_app=app_name)
        app = self.apps.get(app_name)
        if app is not None and channel.originated_by != app_name and channel.id in app.channel_ids:
            app.channel_ids.remove(channel.id)  # a channel that left Stasis gets no more events (trace 12)
        self._varset(channel, "STASISSTATUS", "SUCCESS")
        if channel.originated_by is not None:
            channel.dialplan.update(app_name="AppDial2", app_data="(Outgoing Line)")

    def remote_hangup(self, channel_id: str) -> None:
        """The far end hangs up: the trunk caller (CANCEL while ringing: cause 127 / 487, trace 31; BYE once
        answered: no cause, trace 12) or a desk phone on an answered leg (BYE: cause 16). A leg still being dialled
        rejects (603, cause 21)."""
        channel = self._channel(channel_id)
        if channel.dialing:
            self._far_end_rejects(channel, 21, 603)
            return
        if channel.inbound and channel.state != "Up":
            self._channel_event("ChannelHangupRequest", channel, cause=127, tech_cause=487)
            cause = 127
        elif channel.inbound:
            self._channel_event("ChannelHangupRequest", channel)
            cause = 16
        else:
            self._channel_event("ChannelHangupRequest", channel, cause=16)
            cause = 16
        self._end(channel, cause)

    # -- channels: REST ---------------------------------------------------------------------------------------------

    def originate(self, params: Mapping[str, str]) -> dict[str, Any]:
        """POST /channels into a Stasis app (the dialplan variant, extension=..., is not simulated)."""
        endpoint_text = params.get("endpoint", "")
        if not endpoint_text:
            raise AriRestError(400, "Endpoint must be specified")
        app_name = params.get("app", "")
        if not app_name:
            raise AriRestError(400, "Application or extension must be specified (the simulator needs app=)")
        technology, _, resource = endpoint_text.partition("/")
        if not technology or not resource:
            raise AriRestError(400, "Invalid endpoint specified")
        try:
            timeout = float(params.get("timeout", "30"))
        except ValueError:
            raise AriRestError(400, "Invalid timeout") from None
        originator = None
        if params.get("originator"):
            originator = self.channels.get(params["originator"])
            if originator is None:
                raise AriRestError(400, "Provided originator channel was not found")
        channel_id = params.get("channelId") or None
        if channel_id is not None and channel_id in self.channels:
            raise AriRestError(409, "Channel with given unique ID already exists")
        endpoint = self.endpoints.get(resource) if technology == "PJSIP" else None
        if endpoint is None or not endpoint.online:
            # chan_pjsip: "Could not create dialog to invalid URI ... Is endpoint registered and reachable?" (trace
            # 30): no channel, no event, and this body (`error`, not `message`).
            raise AriRestError(500, "Allocation failed", key="error")
        name, number = _parse_caller_id(params.get("callerId", ""))
        channel = self._new_channel(
            endpoint,
            channel_id=channel_id,
            state="Down",
            protocol_id=str(uuid.uuid4()),
            caller={"name": name or endpoint.caller_name, "number": number or endpoint.resource},
            connected=dict(originator.caller) if originator else {"name": "", "number": ""},
            dialplan={
                "context": endpoint.context,
                "exten": "s",
                "priority": 1,
                "app_name": "AppDial2",
                "app_data": "(Outgoing Line)",
            },
            dialing=True,
            dial_string=resource,
        )
        channel.app_args = [arg for arg in params.get("appArgs", "").split(",") if arg] if "appArgs" in params else []
        app = self.apps.get(app_name)
        if app is not None and channel.id not in app.channel_ids:
            app.channel_ids.append(channel.id)  # subscribed after ChannelCreated was published, as Asterisk does
        channel.originated_by = app_name
        loop = asyncio.get_running_loop()
        channel.timers.append(loop.call_soon(self._dial_begin, channel, timeout))
        return channel.to_json()

    def _dial_begin(self, channel: SimChannel, timeout: float) -> None:
        if channel.gone:
            return
        self._dial(channel, "")
        phone = channel.endpoint.phone
        loop = asyncio.get_running_loop()
        timers = channel.timers
        if phone.busy:
            timers.append(loop.call_later(0.001, self._far_end_rejects, channel, 17, 486))
            return
        if phone.decline_after_s is not None and phone.decline_after_s <= 0:
            timers.append(loop.call_later(0.001, self._far_end_rejects, channel, 21, 603))
            return
        timers.append(loop.call_later(phone.ring_after_s, self._ringing, channel))
        if phone.decline_after_s is not None:
            timers.append(loop.call_later(phone.decline_after_s, self._far_end_rejects, channel, 21, 603))
        if phone.answer_after_s is not None:
            timers.append(loop.call_later(phone.answer_after_s, self._answered, channel))
        if timeout > 0:
            timers.append(loop.call_later(timeout, self._dial_timeout, channel))

    def _ringing(self, channel: SimChannel) -> None:
        if channel.gone or not channel.dialing or channel.state != "Down":
            return
        channel.state = "Ringing"
        self._channel_event("ChannelStateChange", channel)
        self._dial(channel, "RINGING")
        self._update_device(channel.endpoint)

    def _answered(self, channel: SimChannel) -> None:
        if channel.gone or not channel.dialing:
            return
        channel.dialing = False
        channel.cancel_timers()
        channel.state = "Up"
        self._update_device(channel.endpoint)
        self._channel_event("ChannelStateChange", channel)
        self._dial(channel, "ANSWER")
        app_name = channel.originated_by or self.default_app
        channel.dialplan.update(app_name="Stasis", app_data=",".join([app_name, *channel.app_args]))
        self._varset(channel, "STASISSTATUS", "")
        app = self.apps.get(app_name)
        if app is None or not app.active:
            self._varset(channel, "STASISSTATUS", "FAILED")
            self._destroy(channel, 16)
            return
        self._enter_stasis(channel, app, channel.app_args)

    def _far_end_rejects(self, channel: SimChannel, cause: int, tech_cause: int) -> None:
        """486 Busy / 603 Decline: chan_pjsip queues a hangup with the mapped cause; the dial API then publishes a
        final Dial event from that cause (BUSY for 17, NOANSWER for 21) and hangs the leg up."""
        if channel.gone or not channel.dialing:
            return
        channel.dialing = False
        self._channel_event("ChannelHangupRequest", channel, cause=cause, tech_cause=tech_cause)
        self._dial(channel, dial_status_for(cause))
        self._destroy(channel, cause, tech_cause)

    def _dial_timeout(self, channel: SimChannel) -> None:
        """The originate timeout: the leg is hung up without a final Dial event (trace 11)."""
        if channel.gone or not channel.dialing:
            return
        channel.dialing = False
        self._destroy(channel, 19, 480)

    def answer(self, channel_id: str) -> None:
        channel = self._in_stasis(channel_id)
        if channel.state != "Up":
            channel.state = "Up"
            self._channel_event("ChannelStateChange", channel)
            self._update_device(channel.endpoint)

    def continue_in_dialplan(self, channel_id: str, context: str | None) -> None:
        """`continue`: the channel leaves Stasis (StasisEnd, STASISSTATUS=SUCCESS) and runs on in the dialplan,
        in `context` or (None) at the priority after Stasis. The dialplan itself is not simulated."""
        channel = self._in_stasis(channel_id)
        self._stasis_end(channel)
        channel.dialplan.update(context=context or channel.dialplan["context"], app_name="(dialplan)")

    def ring(self, channel_id: str) -> None:
        """Ringback to the caller: no event (traces 11, 12)."""
        self._in_stasis(channel_id)

    def hangup(self, channel_id: str, reason: str | None = None, reason_code: str | None = None) -> None:
        channel = self._channel(channel_id)
        if reason_code:
            if not reason_code.isdigit():
                raise AriRestError(400, "Invalid reason_code provided")
            cause = int(reason_code)
        elif reason:
            if reason not in HANGUP_REASONS:
                raise AriRestError(400, "Invalid reason for hangup provided")
            cause = HANGUP_REASONS[reason]
        else:
            cause = 16
        self._channel_event("ChannelHangupRequest", channel, cause=SOFT_HANGUP_EXPLICIT, soft=True)
        self._end(channel, cause)

    def _end(self, channel: SimChannel, cause: int) -> None:
        if channel.dialing:  # a leg still ringing (29, 31): final Dial from the cause, then gone
            channel.dialing = False
            self._dial(channel, dial_status_for(cause))
            self._destroy(channel, cause)
            return
        if channel.bridge_id is not None:
            self._leave_bridge(channel)
        self._stasis_end(channel)
        self._destroy(channel, cause)

    # -- bridges ----------------------------------------------------------------------------------------------------

    def _bridge(self, bridge_id: str) -> SimBridge:
        bridge = self.bridges.get(bridge_id)
        if bridge is None:
            raise not_found("Bridge")
        return bridge

    def bridge_json(self, bridge_id: str) -> dict[str, Any]:
        return self._bridge(bridge_id).to_json()

    def bridges_json(self) -> list[dict[str, Any]]:
        return [bridge.to_json() for bridge in self.bridges.values()]

    def create_bridge(self, params: Mapping[str, str]) -> dict[str, Any]:
        kinds = [kind for kind in params.get("type", "mixing").split(",") if kind]
        allowed = {"mixing", "holding", "dtmf_events", "proxy_media", "video_sfu", "video_single"}
        if any(kind not in allowed for kind in kinds):
            raise AriRestError(400, "Invalid bridge type")
        bridge_id = params.get("bridgeId") or str(uuid.uuid4())
        if bridge_id in self.bridges:
            raise AriRestError(409, "Bridge with given unique ID already exists")
        bridge = SimBridge(bridge_id, params.get("name", ""), "holding" if "holding" in kinds else "mixing")
        self.bridges[bridge.id] = bridge
        self._emit("BridgeCreated", {"bridge": bridge.to_json()}, bridge=bridge)  # only subscribeAll apps see it
        return bridge.to_json()

    def add_channels(self, bridge_id: str, channel_ids: Sequence[str]) -> None:
        bridge = self._bridge(bridge_id)
        if not channel_ids:
            raise AriRestError(400, "Missing parameter channel")
        channels = []
        for channel_id in channel_ids:
            channel = self.channels.get(channel_id)
            if channel is None or channel.gone:
                raise AriRestError(400, "Channel not found")
            if channel.stasis_app is None:
                raise AriRestError(422, "Channel not in Stasis application")
            channels.append(channel)
        for channel in channels:
            if channel.bridge_id == bridge.id:
                continue
            if channel.bridge_id is not None:
                self._leave_bridge(channel)
            app = self.apps.get(channel.stasis_app or "")
            if app is not None and bridge.id not in app.bridge_ids:
                app.bridge_ids.append(bridge.id)  # res_stasis subscribes the app when its channel enters
            bridge.channel_ids.append(channel.id)
            channel.bridge_id = bridge.id
            self._emit(
                "ChannelEnteredBridge", {"bridge": bridge.to_json(), "channel": channel.to_json()}, bridge=bridge
            )
            if len(bridge.channel_ids) == 2:
                self._bridge_peers(bridge, channel)

    def _bridge_peers(self, bridge: SimBridge, newest: SimChannel) -> None:
        """Two parties: BRIDGEPEER / BRIDGEPVTCALLID set on both, three rounds as recorded (12, 29), then a
        ConnectedLine update for the party whose connected line changed (the caller)."""
        other = self.channels[next(i for i in bridge.channel_ids if i != newest.id)]
        for _ in range(3):
            for channel, peer in ((newest, other), (other, newest)):
                self._varset(channel, "BRIDGEPEER", peer.name)
                self._varset(channel, "BRIDGEPVTCALLID", peer.protocol_id)
        for channel, peer in ((other, newest), (newest, other)):
            if channel.connected != peer.caller:
                channel.connected = dict(peer.caller)
                self._channel_event("ChannelConnectedLine", channel)
        bridge.technology = "native_rtp"

    def remove_channel(self, bridge_id: str, channel_id: str) -> None:
        bridge = self._bridge(bridge_id)
        channel = self.channels.get(channel_id)
        if channel is None or channel.gone:
            raise AriRestError(400, "Channel not found")
        if channel.bridge_id != bridge.id:
            raise AriRestError(422, "Channel not in this bridge")
        self._leave_bridge(channel)

    def _leave_bridge(self, channel: SimChannel) -> None:
        bridge = self.bridges.get(channel.bridge_id or "")
        channel.bridge_id = None
        if bridge is None or channel.id not in bridge.channel_ids:
            return
        self._varset(channel, "BRIDGEPEER", "")
        self._varset(channel, "BRIDGEPVTCALLID", "")
        bridge.channel_ids.remove(channel.id)
        self._emit("ChannelLeftBridge", {"bridge": bridge.to_json(), "channel": channel.to_json()}, bridge=bridge)
        if len(bridge.channel_ids) < 2:
            bridge.technology = "simple_bridge"

    def destroy_bridge(self, bridge_id: str) -> None:
        bridge = self._bridge(bridge_id)
        for channel_id in list(bridge.channel_ids):
            channel = self.channels.get(channel_id)
            if channel is not None:
                self._leave_bridge(channel)
        self._emit("BridgeDestroyed", {"bridge": bridge.to_json()}, bridge=bridge)
        del self.bridges[bridge.id]
        for app in self.apps.values():
            if bridge.id in app.bridge_ids:
                app.bridge_ids.remove(bridge.id)

    # -- endpoints: REST --------------------------------------------------------------------------------------------

    def endpoints_json(self, technology: str | None = None, resource: str | None = None) -> Any:
        listed = list(reversed(self.endpoints.values()))  # trunk, 102, 101, 100: the recorded order
        if technology is None:
            return [endpoint.to_json() for endpoint in listed]
        if technology != "PJSIP":
            raise AriRestError(404, "No Endpoints found - invalid tech")
        if resource is None:
            return [endpoint.to_json() for endpoint in listed]
        endpoint = self.endpoints.get(resource)
        if endpoint is None:
            raise not_found("Endpoint")
        return endpoint.to_json()

    # -- a desk calling a desk through the dialplan (trace 33) ------------------------------------------------------

    def internal_call(self, caller: str, callee: str, *, talk_s: float = 2.0, ring_timeout_s: float = 15.0) -> None:
        """Desk `caller` dials desk `callee` (`Dial(PJSIP/<callee>,15)` in from-internal, no Stasis); the callee's
        phone behaviour decides; the caller hangs up after talk_s. Apps see it through endpoint / device
        subscriptions only. Runs in the background."""
        task = asyncio.get_running_loop().create_task(self._internal_call(caller, callee, talk_s, ring_timeout_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _internal_call(self, caller: str, callee: str, talk_s: float, ring_timeout_s: float) -> None:
        source, target = self.endpoint(caller), self.endpoint(callee)
        a = self._new_channel(
            source,
            state="Ring",
            protocol_id=f"1-{8000 + next(self._seq)}@127.0.0.1",
            caller={"name": source.caller_name, "number": source.resource},
            connected={"name": "", "number": ""},
            dialplan={"context": "from-internal", "exten": callee, "priority": 1, "app_name": "", "app_data": ""},
        )
        note = f'CallBuddy internal: "{source.caller_name}" <{source.resource}> -> {callee}'
        a.dialplan.update(app_name="NoOp", app_data=note)
        self._channel_event("ChannelDialplan", a, dialplan_app="NoOp", dialplan_app_data=note)
        dial_data = f"PJSIP/{callee},{ring_timeout_s:g}"
        a.dialplan.update(priority=2, app_name="Dial", app_data=dial_data)
        self._channel_event("ChannelDialplan", a, dialplan_app="Dial", dialplan_app_data=dial_data)
        if not target.online:
            self._destroy(a, 20)  # CHANUNAVAIL; not recorded
            return
        b = self._new_channel(
            target,
            state="Down",
            protocol_id=str(uuid.uuid4()),
            caller={"name": target.caller_name, "number": target.resource},
            connected=dict(a.caller),
            dialplan={"context": "from-internal", "exten": callee, "priority": 1, "app_name": "", "app_data": ""},
            dial_string=callee,
        )
        b.dialplan.update(app_name="AppDial", app_data="(Outgoing Line)")
        self._channel_event("ChannelDialplan", b, dialplan_app="AppDial", dialplan_app_data="(Outgoing Line)")
        self._channel_event("ChannelConnectedLine", b)
        self._dial(b, "", caller=a, dialstring=callee)
        a.connected = dict(b.caller)
        self._channel_event("ChannelConnectedLine", a)
        phone = target.phone
        await asyncio.sleep(phone.ring_after_s)
        b.state = "Ringing"
        self._channel_event("ChannelStateChange", b)
        self._dial(b, "RINGING", caller=a, dialstring="")  # app_dial reports later states without a dial string
        self._update_device(target)
        self._update_device(source)
        if phone.answer_after_s is None or phone.answer_after_s >= ring_timeout_s:
            await asyncio.sleep(ring_timeout_s)
            b.hanging_up = True
            self._dial(b, "NOANSWER", caller=a, dialstring="")
            self._destroy(b, 19)
            self._destroy(a, 16)
            return
        await asyncio.sleep(max(0.0, phone.answer_after_s - phone.ring_after_s))
        b.state = "Up"
        self._update_device(target)
        self._channel_event("ChannelStateChange", b)
        self._dial(b, "ANSWER", caller=a, dialstring="")
        a.state = "Up"
        self._channel_event("ChannelStateChange", a)
        # Dial() bridges the two in a basic bridge: only subscribeAll apps see its events (33).
        bridge = SimBridge(str(uuid.uuid4()), "", stasis=False)
        self.bridges[bridge.id] = bridge
        self._emit("BridgeCreated", {"bridge": bridge.to_json()}, bridge=bridge)
        self._channel_event("ChannelDialplan", b, dialplan_app="AppDial", dialplan_app_data="(Outgoing Line)")
        for channel in (b, a):
            bridge.channel_ids.append(channel.id)
            channel.bridge_id = bridge.id
            self._emit(
                "ChannelEnteredBridge", {"bridge": bridge.to_json(), "channel": channel.to_json()}, bridge=bridge
            )
        await asyncio.sleep(talk_s)
        self._channel_event("ChannelHangupRequest", a, cause=16)
        self._leave_basic_bridge(a, bridge)
        self._channel_event("ChannelHangupRequest", a, cause=16, soft=True)
        self._leave_basic_bridge(b, bridge)
        self._destroy(a, 16)
        self._emit("BridgeDestroyed", {"bridge": bridge.to_json()}, bridge=bridge)
        self.bridges.pop(bridge.id, None)
        b.hanging_up = True
        self._update_device(target)
        self._destroy(b, 16)

    def _leave_basic_bridge(self, channel: SimChannel, bridge: SimBridge) -> None:
        bridge.channel_ids.remove(channel.id)
        channel.bridge_id = None
        self._emit("ChannelLeftBridge", {"bridge": bridge.to_json(), "channel": channel.to_json()}, bridge=bridge)

    # -- restart ----------------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """What a restart forgets: channels, bridges, apps (contacts survive: PJSIP keeps them in astdb)."""
        for channel in self.channels.values():
            channel.cancel_timers()
            channel.gone = True
        for task in self._tasks:
            task.cancel()
        self.channels.clear()
        self.bridges.clear()
        self.apps.clear()
        for endpoint in self.endpoints.values():
            endpoint.channel_ids.clear()
            self.device_states[endpoint.name] = self._device_state(endpoint)
        self.mobiles.cancel_all()
        self.started = time.time()

    async def stop(self) -> None:
        self.reset()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)


def _default_contact(resource: str) -> str:
    """Where the recorded desks registered from: 100 at 127.0.0.1:5101, 101 at :5102, 102 at :5103."""
    port = 5001 + int(resource) if resource.isdigit() and 100 <= int(resource) < 1000 else 5060
    return f"sip:{resource}@127.0.0.1:{port}"


def _parse_caller_id(text: str) -> tuple[str, str]:
    """`"Name" <number>`, `Name <number>` or `number` -> (name, number)."""
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].partition("<")
        return name.strip().strip('"'), number.strip()
    return "", text


def split_list(values: Iterable[str]) -> list[str]:
    """Query values as ARI takes them: repeated and/or comma-separated."""
    return [item for value in values for item in value.split(",") if item]
