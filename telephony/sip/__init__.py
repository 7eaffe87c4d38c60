"""The SIP transport: pjsua2 user-agent workers behind Kamailio (`parley sip`).

    settings.py    SipSettings (PARLEY_SIP_*), trunks, the number plan
    message.py     reading raw SIP text: request line, headers, digest parameters
    trunks.py      who may call in: source-address allow-lists and digest authentication
    media.py       the pooled AudioMediaPort that moves 200 ms frames without per-byte Python
    leg.py         SipLeg: one call as a `telephony.leg.Leg`, and its life from INVITE to BYE
    worker.py      one worker process: a pjsua2 Endpoint (at most 4 calls), polled from asyncio
    kamailio.py    the generated Kamailio dispatcher configuration and its process
    supervisor.py  `parley sip --workers N`: workers + Kamailio, restarts, /healthz, events

Like the websocket gateway, this package knows nothing of agents or the model: a worker asks a
`CallConnector` (parley/cli_sip.py passes the agent's SessionConnector) for each call's handler.
"""
