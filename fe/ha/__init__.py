"""FE high availability: who leads, who follows, and what every FE knows about the others."""
