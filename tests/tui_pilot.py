"""Helpers shared by the app's pilot tests (App.run_test)."""

from __future__ import annotations


def screen_text(app) -> str:
    """What the terminal would show, as text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    """Let the app run until `condition()` holds (a safety limit, not a timing assertion)."""
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("the app never reached the expected state")


async def submit(pilot, app, prompt: str = "What is 12+30?") -> None:
    """Type `prompt` into the prompt box once the model is ready, and press Enter."""
    await wait_for(pilot, lambda: app.ready)
    app.query_one("#prompt").value = prompt
    await pilot.press("enter")


async def settings_refused(pilot, app, field: str, value: str):
    """Open the settings (ctrl+s), put `value` in `field` and save: the form must stay open. Returns the
    screen and the problem it shows."""
    from textual.widgets import Input

    from workbench.tui.screens import SettingsScreen

    await wait_for(pilot, lambda: app.ready)
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
    screen = app.screen
    screen.query_one(f"#{field}", Input).value = value
    await pilot.click("#save")  # (later: Enter in a field; the error toast may cover the button)
    await pilot.pause()
    assert isinstance(app.screen, SettingsScreen)  # out of range: the form stays open
    return screen, str(screen.query_one("#problem").render())


async def ask(pilot, app, prompt: str = "What is 12+30?") -> None:
    """`submit`, then wait until the response to it has finished."""
    await submit(pilot, app, prompt)
    await wait_for(pilot, lambda: app.last is not None and app.last.prompt == prompt)
