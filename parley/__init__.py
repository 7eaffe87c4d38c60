"""The composition root: the `parley` command line and the wiring of the layers below it.

`cli` parses commands and hands each to the package that does the work; `serve` supervises the
whole platform as child processes; `gateway_app` and `cli_sip` bind the transports to the agent's
call sessions and to the admin API's storage (`admin_link`). Nothing below imports this package.
"""
