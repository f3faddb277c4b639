"""Delivery: forwarding stored messages to destination servers (DESIGN §6).

`service.DeliveryService` is the `serve` component; `smtp` sends one message, `route` finds
where, `trace` builds the prepended headers, `outcome` records what happened. Import the
submodules directly (this package imports nothing, so `gateway.notices.receipts` can use `trace`).
"""
