"""Server-rendered pages for people who do not call the API: holders, enterprises, operators, regulators."""
