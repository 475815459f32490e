"""A bot for the framework tests: per-conversation state, rooms, failures, hooks, timers."""

from __future__ import annotations

import asyncio

from chinwag.bot import Actions, Bot, Context

bot = Bot("samplebot", about="A bot for tests.", rooms=["bots"])


@bot.command("count", help="count: how often you asked, here")
def count(ctx: Context) -> None:
    ctx.state["n"] = ctx.state.get("n", 0) + 1
    ctx.reply(f"count {ctx.state['n']}")


@bot.command("boom")
def boom(ctx: Context) -> None:
    ctx.store.put("data", "x", 1)
    ctx.state["n"] = 999
    ctx.reply("never sent")
    raise RuntimeError("boom")


@bot.command("peek")
def peek(ctx: Context) -> None:
    ctx.reply(f"x is {ctx.store.get('data', 'x')}")


@bot.command("private", dm_only=True)
def private(ctx: Context) -> None:
    ctx.reply("a secret")


@bot.command("echo", "say")
async def echo(ctx: Context) -> None:
    await asyncio.sleep(0)
    ctx.reply(ctx.args or "(nothing)")


@bot.command("burst")
def burst(ctx: Context) -> None:
    for i in range(int(ctx.args)):
        ctx.reply(f"burst {i}")


@bot.command("stats")
def stats(ctx: Context) -> None:
    starts, ticks = ctx.store.get("meta", "starts", 0), ctx.store.get("meta", "ticks", 0)
    ctx.reply(f"starts {starts}, ticking {ticks > 0}")


@bot.on_start
def started(acts: Actions) -> None:
    acts.store.put("meta", "starts", acts.store.get("meta", "starts", 0) + 1)


@bot.every(0.2)
def tick(acts: Actions) -> None:
    acts.store.put("meta", "ticks", acts.store.get("meta", "ticks", 0) + 1)


if __name__ == "__main__":
    raise SystemExit(bot.main())
