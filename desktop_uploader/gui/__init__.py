"""The desktop app: Qt widgets, models and dialogs over the engine, joined by one bridge."""
