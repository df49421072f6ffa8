"""The headless engine: decode frames, track both endpoints' states, keep the timeline, and
answer queries at any cursor time. Nothing here imports Textual, rich or scapy."""
