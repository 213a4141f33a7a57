"""Template tags of the reports app (`{% load reports_tags %}`): read models only."""
