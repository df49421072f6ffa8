"""Modal screens: key help, one frame's dissection, the interface picker."""
