"""The per-call domain: agent configuration, `CallSession`, bridged calls' rooms (`bridge`),
events, the call's timeline, the model-server client and the tool router. Depends on
`telephony.leg`, `model.protocol` and the public names of `workers`; knows nothing of transports'
wire formats or of the admin API."""
