"""Builds the configured gateways by kind."""

from __future__ import annotations

from callbuddy_pbx.config import Config, GatewayConfig
from callbuddy_pbx.sms.gateway import SmsGateway
from callbuddy_pbx.sms.gateway_webhooks import WebhookGateway
from callbuddy_pbx.sms.http_generic import GenericHttpGateway
from callbuddy_pbx.sms.http_kannel import KannelGateway
from callbuddy_pbx.sms.http_twilio import TwilioGateway
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.sms.smpp import SmppGateway


def build_gateway(gateway: GatewayConfig, config: Config) -> SmsGateway:
    region = config.default_region
    if gateway.kind == "smpp":
        return SmppGateway(gateway, default_region=region)
    if gateway.kind == "twilio":
        return TwilioGateway(gateway, config.web, default_region=region, timeout_s=gateway.timeout_s)
    if gateway.kind == "kannel":
        return KannelGateway(gateway, config.web, default_region=region, timeout_s=gateway.timeout_s)
    if gateway.kind == "generic":
        return GenericHttpGateway(gateway, config.web, default_region=region, timeout_s=gateway.timeout_s)
    if gateway.kind == "simulated":
        return SimulatedGateway(gateway.name)
    raise ValueError(f"gateway {gateway.name!r}: unknown kind {gateway.kind!r}")


def build_gateways(config: Config) -> dict[str, SmsGateway]:
    return {g.name: build_gateway(g, config) for g in config.gateways}


def webhook_gateways(gateways: dict[str, SmsGateway]) -> dict[str, WebhookGateway]:
    """The gateways that receive receipts and replies over HTTP (served by the web server)."""
    return {name: g for name, g in gateways.items() if isinstance(g, WebhookGateway)}
