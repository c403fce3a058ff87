"""Static assets of the site built by ``hwcal-site`` (CSS and small vanilla scripts), shipped as package data so
the site loads nothing from outside itself."""
