"""Recording: frames in, sealed clips and snapshots out (encoders, the recorder, who clips are
sealed to, live segments)."""
