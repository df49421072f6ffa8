"""What the timeline is written out as: ``ladder`` (ladder rows), ``json_rows`` (the summary's
rows, compiled), ``diagram`` (Mermaid, PlantUML), ``writers`` (the export formats)."""
