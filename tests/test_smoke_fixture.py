def test_both_servers_answer(cluster):
    """Both kinds of SSH server take the inventory's key and run a command."""
    from saf.inventory import load_inventory
    from saf.fleet import Fleet
    import asyncio

    async def go():
        async with Fleet(load_inventory(cluster.inventory)) as fleet:
            return await fleet.each(await fleet.select("all"), lambda c: c.run("echo ok"))

    results = asyncio.run(go())
    assert {n: r.stdout for n, r in results.items()} == {n: "ok\n" for n in ["alpha", "beta", "gamma"]}
