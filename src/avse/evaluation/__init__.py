"""Objective evaluation: metrics (SI-SDR, SDR/SIR/SAR, PESQ, STOI), baselines, scoring models on scenes, summaries."""
